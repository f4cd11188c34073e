"""Settings from environment variables: ``MENTOR_AGENT_<SECTION>__<KEY>`` (``__`` between the levels, any case),
read over what the config file says.

pydantic-settings reads them (its ``EnvSettingsSource``: nested by ``__``, JSON for a section or a list, a variable
that names no setting at its first level, such as ``MENTOR_AGENT_CRASH_AT``, left alone). It is loaded only when
the environment sets at least one ``MENTOR_AGENT_*`` variable: its 46 modules cost every daemon 1.8 MB of
memory (issue 21), and a daemon started by systemd with its settings in the config file has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

ENV_PREFIX = "MENTOR_AGENT_"
NESTED = "__"


def from_environment(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values the environment sets for ``model``'s fields, nested by ``__`` (an empty dict when none).

    A value that is not JSON where a section or a list wants JSON is passed on as its text, so that the model
    names the variable ("must be a list") instead of pydantic-settings' SettingsError ending in a traceback."""
    ours = {name: text for name, text in environ.items() if name.upper().startswith(ENV_PREFIX)}
    if not ours:
        return {}
    from pydantic_settings import EnvSettingsSource, SettingsError  # only when there is something to read
    from pydantic_settings.sources.utils import parse_env_vars

    def read(variables: Mapping[str, str]) -> dict[str, Any]:
        class Given(EnvSettingsSource):
            def _load_env_vars(self) -> Mapping[str, str | None]:
                return parse_env_vars(variables, False, False, None)

        return Given(model, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED)()  # type: ignore[arg-type]

    try:
        return read(ours)
    except SettingsError:
        pass
    values: dict[str, Any] = {}
    for name, text in sorted(ours.items(), key=lambda item: item[0].count(NESTED)):  # a section, then its keys
        try:
            found = read({name: text})
        except SettingsError:
            found = {}
            target = found
            *sections, key = name[len(ENV_PREFIX) :].lower().split(NESTED)
            for section in sections:
                target = target.setdefault(section, {})
            target[key] = text
        values = merged(values, found)
    return values


def merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it: sections merged key by key, any other value replaced."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result
