"""Write what a mentor agreed into her policy file, keeping the file's comments and layout (tomlkit).

Only the values that changed are replaced (each keeps its end-of-line comment); ``[agreement]`` gets
``agreed_on`` and ``version`` (the table is added at the end when the file has none). The edited text is
validated as a policy before it replaces the file, and the file is replaced atomically: a bad value never
leaves a broken policy behind.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.items import InlineTable, Item, Table

from agent.errors import Problem, UserError
from agent.rules.policy import Policy, problems_from_validation, read_toml


def _set(table: Any, key: str, value: Any) -> None:
    """Replace ``table[key]`` keeping the comment written after the old value, in its column."""
    new: Item = tomlkit.item(value)
    old = table.get(key) if key in table else None
    if isinstance(old, Item) and old.trivia.comment:
        # The comment stays in its column: the space before it grows or shrinks with the value (one at least).
        width = len(old.trivia.comment_ws) + len(old.as_string()) - len(new.as_string())
        new.trivia.comment_ws = " " * max(1, width) if old.trivia.comment_ws.strip(" ") == "" else old.trivia.comment_ws
        new.trivia.comment = old.trivia.comment
    table[key] = new


def edited(text: str, changes: Mapping[str, Any], agreed_on: date, version: int) -> str:
    """``text`` with ``changes`` ({"email.max_per_week": 2, …}) and the agreement's date and version."""
    document = tomlkit.parse(text)
    values = {**changes, "agreement.agreed_on": agreed_on, "agreement.version": version}
    for path, value in values.items():
        section, key = path.split(".", 1)
        if section not in document:
            document.add(tomlkit.nl())
            document.add(section, tomlkit.table())
        table = document[section]
        if not isinstance(table, Table | InlineTable):
            raise ValueError(f"[{section}] is written in a form mentor-agent cannot edit: write it as a table")
        _set(table, key, value)
    return tomlkit.dumps(document)


def problems_with(path: Path, changes: Mapping[str, Any]) -> list[str]:
    """What would be wrong with the policy at ``path`` with ``changes`` (empty: they make a valid policy)."""
    try:
        text, _ = read_toml(path)
        new_text = edited(text, changes, date(2000, 1, 1), 1)
        Policy.model_validate(tomllib.loads(new_text))
    except UserError as error:
        return [str(problem) for problem in error.problems]
    except ValidationError as error:
        return [str(problem) for problem in problems_from_validation(path, new_text, error)]
    except ValueError as error:  # a form tomlkit reads but the agreement cannot be written into (edited)
        return [f"{path}: {error}"]
    return []


def apply_agreement(path: Path, changes: Mapping[str, Any], agreed_on: date, version: int) -> Policy:
    """Write the agreed values into the policy at ``path``; raise UserError (file, key, line) if they do not
    make a valid policy, leaving the file as it was."""
    text, _ = read_toml(path)
    try:
        new_text = edited(text, changes, agreed_on, version)
        policy = Policy.model_validate(tomllib.loads(new_text))
    except ValidationError as error:
        raise UserError(problems_from_validation(path, new_text, error)) from error
    except ValueError as error:  # a form tomlkit reads but the agreement cannot be written into (edited)
        raise UserError([Problem(file=str(path), key="", message=str(error))]) from error
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(new_text)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return policy
