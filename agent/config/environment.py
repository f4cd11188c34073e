"""Settings from environment variables: ``MENTOR_AGENT_<SECTION>__<KEY>`` (``__`` between the levels, any case),
read over what the config file says.

What pydantic-settings did for us, without loading it (46 modules, 1.8 MB in every daemon: issue 21), and the
same way: a variable that names no setting at its first level (``MENTOR_AGENT_CRASH_AT``) is not a setting and
is left alone; below that, an unknown key is an error that names the variable. A value for a section or a list
(``MENTOR_AGENT_CALENDAR__BUSY_ICS='["a.ics"]'``) is read as JSON; every other value stays a string, which the
model converts and checks. A deeper variable wins over a section's JSON, and both over the file.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

ENV_PREFIX = "MENTOR_AGENT_"
NESTED = "__"
_COMPLEX = (list, dict, set, frozenset, tuple)


def _model_of(field: FieldInfo | None) -> type[BaseModel] | None:
    """The model a field holds (a section), also inside ``X | None``; None for a plain value."""
    if field is None:
        return None
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_complex(field: FieldInfo | None) -> bool:
    """Whether a variable's value for this field is JSON: a section or a collection."""
    if field is None:
        return False
    annotation = field.annotation
    arguments = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    for candidate in arguments:
        if isinstance(candidate, type) and issubclass(candidate, (BaseModel, *_COMPLEX)):
            return True
        if get_origin(candidate) in _COMPLEX:
            return True
    return False


def _value(field: FieldInfo | None, text: str) -> Any:
    if not _is_complex(field):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON: the model says what it expected ("must be a list"), naming the variable


def from_environment(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values the environment sets for ``model``'s fields, nested by ``__``."""
    found: list[tuple[list[str], str]] = []
    for name, text in environ.items():
        if name.upper().startswith(ENV_PREFIX):
            path = name[len(ENV_PREFIX) :].lower().split(NESTED)
            if path[0] in model.model_fields:
                found.append((path, text))
    values: dict[str, Any] = {}
    for path, text in sorted(found, key=lambda item: len(item[0])):  # a section's JSON first, its keys over it
        target: dict[str, Any] = values
        current: type[BaseModel] | None = model
        for key in path[:-1]:
            field = current.model_fields.get(key) if current is not None else None
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target, current = target[key], _model_of(field)
        last = path[-1]
        field = current.model_fields.get(last) if current is not None else None
        target[last] = _value(field, text)
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
