"""Where a sign-in's grant (refresh token, account, the library's token cache) is kept between runs.

Like other secrets: in the system keyring when ``keyring_service`` is set (and the keyring package is installed),
else in a file readable by its owner only, ``<state_dir>/grants/<provider>-<username>.json``, written atomically
(a temporary file, fsync, rename) so that a crash never leaves half a grant. [imap] and [smtp] signed in to the
same account share one grant. A grant's text is never logged: every token in it is registered with agent.logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config.settings import Credentials
from agent.errors import Problem, UserError
from agent.logs import register_secret

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


@dataclass(frozen=True)
class GrantStore:
    """One account's grant: in the keyring (service, user) or in ``path``."""

    name: str  # "<provider>-<username>", also the keyring user
    path: Path
    keyring_service: str = ""

    @property
    def where(self) -> str:
        if self.keyring_service:
            return f"the keyring (service {self.keyring_service!r}, user {self.name!r})"
        return str(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a grant is read, refreshed and written back — by this process's threads and, through a
        lock file beside it, by other processes (`mentor-agent login` while the daemon runs) — so that no
        refresh token is spent twice and a new sign-in is never overwritten by an old grant."""
        with _lock(self.where):
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)  # releases the flock

    def load(self) -> dict[str, Any] | None:
        text = self._read()
        if text is None:
            return None
        try:
            grant = json.loads(text)
        except ValueError:
            raise UserError([Problem(self.where, "", "the stored sign-in is damaged; sign in again")]) from None
        if not isinstance(grant, dict):
            raise UserError([Problem(self.where, "", "the stored sign-in is damaged; sign in again")])
        _register_tokens(grant)
        return grant

    def save(self, grant: dict[str, Any]) -> None:
        _register_tokens(grant)
        text = json.dumps(grant, indent=1, sort_keys=True)
        if self.keyring_service:
            try:
                _keyring().set_password(self.keyring_service, self.name, text)
            except UserError:
                raise
            except Exception as error:  # backends raise their own types; the kind, never the text
                raise UserError(
                    [
                        Problem(
                            "", "keyring_service", f"cannot store the sign-in in the keyring ({type(error).__name__})"
                        )
                    ]
                ) from None
            return
        write_private(self.path, text)

    def version(self) -> str:
        """A digest of the stored grant ("" when there is none): it changes when someone signs in again."""
        try:
            text = self._read()
        except UserError:
            return ""
        return hashlib.sha256(text.encode()).hexdigest() if text else ""

    def _read(self) -> str | None:
        if self.keyring_service:
            try:
                value = _keyring().get_password(self.keyring_service, self.name)
            except UserError:
                raise
            except Exception as error:
                raise UserError(
                    [Problem("", "keyring_service", f"keyring lookup failed ({type(error).__name__})")]
                ) from None
            return str(value) if value else None
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UserError(
                [Problem(str(self.path), "", f"cannot read the stored sign-in: {error.strerror}")]
            ) from None


def store_for(creds: Credentials, *, username: str, state_dir: Path) -> GrantStore:
    name = f"{creds.oauth2}-{_safe(username or creds.username)}"
    return GrantStore(name=name, path=state_dir / "grants" / f"{name}.json", keyring_service=creds.keyring_service)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", text.strip().lower()) or "account"


def _keyring() -> Any:
    try:
        return importlib.import_module("keyring")
    except ImportError:
        raise UserError(
            [
                Problem(
                    "",
                    "keyring_service",
                    "is set but the keyring package is not installed (pip install keyring, or pipx inject "
                    "mentor-agent keyring); or leave keyring_service empty to keep the sign-in in the state dir",
                )
            ]
        ) from None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600, its directory 0700) atomically: the old file or the new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _register_tokens(value: Any) -> None:
    """Every token-looking string in a grant (msal's cache holds them under "secret")."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key in {"secret", "refresh_token", "access_token", "id_token"}:
                register_secret(item)
            _register_tokens(item)
    elif isinstance(value, list):
        for item in value:
            _register_tokens(item)
