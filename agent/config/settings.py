"""The student's own settings: accounts, folders, where policies and state live.

Read from a TOML file (``$XDG_CONFIG_HOME/mentor-agent/config.toml`` unless ``--config`` names another) and
from environment variables ``MENTOR_AGENT_<SECTION>__<KEY>`` (e.g. ``MENTOR_AGENT_IMAP__HOST``), which win.
No secret has to be written here: see ``password_command`` and docs/setup.md, "Secrets".
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from agent.config.environment import ENV_PREFIX, from_environment, merged
from agent.errors import Problem, UserError
from agent.rules.localtime import zone_named
from agent.rules.policy import Address, problems_from_validation, read_toml

Security = Literal["tls", "starttls", "plain"]


def xdg_dir(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / fallback
    return base / "mentor-agent"


def default_config_path() -> Path:
    return xdg_dir("XDG_CONFIG_HOME", ".config") / "config.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Student(_Section):
    name: str = "Student"
    address: Address = "student@example.org"
    timezone: str = "UTC"
    hours: list[str] = ["Mon-Sun 07:00-22:00"]  # meeting times for you, in your zone (agent.rules.student_hours)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @field_validator("hours")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        from agent.rules.student_hours import parse_hours

        parse_hours(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return zone_named(self.timezone)


class Credentials(_Section):
    """How to log in. Prefer a command or a systemd credential to a password in the file."""

    username: str = ""
    password_command: str = ""  # e.g. "pass show mail/uni": its first line is the password
    oauth2_token_command: str = ""  # prints an OAuth2 access token (XOAUTH2), run at every connect
    credential: str = ""  # name of a systemd credential ($CREDENTIALS_DIRECTORY/<name>)
    keyring_service: str = ""  # look the password up in the system keyring under this service
    password: SecretStr | None = None  # discouraged; MENTOR_AGENT_IMAP__PASSWORD works too
    ca_file: Path | None = None  # PEM file of a private CA, trusted instead of the system's CAs
    # Built-in sign-in (agent/mail/oauth.py; `mentor-agent setup` or `mentor-agent login` signs in once):
    oauth2: Literal["", "microsoft", "google"] = ""  # "": a password or a command above
    oauth2_client_id: str = ""  # the app registration (Microsoft) or OAuth client (Google) to sign in with
    oauth2_tenant: str = "organizations"  # Microsoft: "organizations", "consumers" or a tenant id
    oauth2_client_file: Path | None = None  # Google: the client's JSON file (client id and secret)
    oauth2_authority: str = ""  # the sign-in server's base URL; empty: the provider's own

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"no such file: {value} (a PEM file with the CA's certificate)")
        return value.expanduser() if value is not None else None


LEGACY_OUTBOX = "Outbox"  # the default up to 0.1.0, and the name of Outlook's own Outbox


class Folders(_Section):
    inbox: str = "INBOX"
    # Not "Outbox": Microsoft 365 and Outlook.com have a built-in Outbox where Outlook parks mail while it sends.
    outbox: str = "Mentor Outbox"
    scheduled: str = "Scheduled"
    needs_attention: str = "Needs attention"
    sending: str = "Sending"  # where a message is claimed while it goes out (one agent wins)
    sent: str = ""  # empty: found by SPECIAL-USE \Sent, else "Sent"
    notices: str = "INBOX"  # where notices to the student are appended
    drafts: str = ""  # where `cancel` puts a message; empty: SPECIAL-USE \Drafts, else "Drafts"


class Imap(Credentials):
    host: str = "127.0.0.1"
    port: int = Field(default=993, ge=1, le=65535)
    security: Security = "tls"
    folders: Folders = Folders()
    idle_renew: int = Field(default=600, ge=30, le=1740)  # seconds; RFC 2177 asks for < 29 minutes
    timeout: float = Field(default=30.0, gt=0)
    poll_interval: int = Field(default=60, ge=5)  # only where the server lacks IDLE


class Smtp(Credentials):
    host: str = "127.0.0.1"
    port: int = Field(default=465, ge=1, le=65535)
    security: Security = "tls"
    timeout: float = Field(default=60.0, gt=0)
    # Providers such as Gmail, Microsoft 365 and iCloud file what you submit in Sent themselves; "auto" looks
    # for the sent Message-ID in Sent (a few seconds) and files it only if the provider did not;
    # "always" (the agent files it) and "never" (the provider always does) override.
    file_in_sent: Literal["auto", "always", "never"] = "auto"
    # SMTP connections used side by side when several messages are due at once (a backlog). Providers
    # allow a few per account (Gmail about 10); 1 sends strictly one after another.
    connections: int = Field(default=3, ge=1, le=10)
    # Whose sending limits apply (agent/rules/limits.py): "auto" finds the provider from the host; "none": no limits.
    provider: Literal["auto", "none", "google", "microsoft365", "outlook.com", "icloud", "yahoo", "fastmail"] = "auto"
    max_per_minute: int = Field(default=0, ge=0)  # your own server's limits, where known; 0: the provider's
    max_per_day: int = Field(default=0, ge=0)


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class Submission(_Section):
    """The door for a mail program's Send: an SMTP submission server (RFC 6409) in the daemon.

    Loopback only unless TLS is set up: a password and the student's mail never cross a network in the clear.
    The password is generated (``<state_dir>/submission-password``); ``mentor-agent setup`` prints it.
    """

    # Before ``listen``, so that its check sees them.
    tls_cert: Path | None = None  # PEM certificate chain and key: STARTTLS, required beyond loopback
    tls_key: Path | None = None
    listen: str = "127.0.0.1"
    port: int = Field(default=1587, ge=1, le=65535)
    username: str = "mentor-agent"

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _pem_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"no such file: {value} (a PEM file)")
        return value.expanduser() if value is not None else None

    @field_validator("tls_key")
    @classmethod
    def _both(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("tls_cert") is None):
            raise ValueError("tls_cert and tls_key go together: set both, or neither")
        return value

    @field_validator("listen")
    @classmethod
    def _no_clear_text_beyond_loopback(cls, value: str, info: ValidationInfo) -> str:
        if not _loopback(value) and info.data.get("tls_cert") is None:
            raise ValueError(
                f"{value!r} is beyond this computer, and without TLS the password and your mail would cross the "
                'network in the clear; set tls_cert and tls_key, or listen = "127.0.0.1"'
            )
        return value

    @property
    def loopback(self) -> bool:
        return _loopback(self.listen)


class Drafts(_Section):
    """The star door: a flagged draft to a mentor is taken as if dropped in the Mentor Outbox. Off unless asked for
    (setup turns it on for a mail program whose door is a star): a flag set as a reminder on a half-written draft
    must never send it."""

    take_flagged: bool = False
    settle: float = Field(default=30.0, ge=0)  # seconds a flagged draft must stand unchanged (autosaves)


class Digest(_Section):
    subject: str = "{count} updates from {student} — {topics}"
    max_bytes: int = Field(default=10_000_000, ge=10_000)


class Calendar(_Section):
    busy_ics: list[str] = []  # .ics files or http(s) URLs with the student's own busy times


class Settings(BaseModel):
    """The whole config: the file's values (passed in), with the environment's (:mod:`agent.config.environment`)
    laid over them."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    student: Student = Student()
    imap: Imap = Imap()
    smtp: Smtp = Smtp()
    digest: Digest = Digest()
    calendar: Calendar = Calendar()
    drafts: Drafts = Drafts()
    submission: Submission | None = None  # [submission]: the daemon takes a mail program's Send (a door)
    policies_dir: Path = xdg_dir("XDG_CONFIG_HOME", ".config") / "policies"
    state_dir: Path = xdg_dir("XDG_STATE_HOME", ".local/state")
    pass_through: bool = True  # messages to no mentor go out at once; False leaves them in Outbox

    def __init__(self, *, environ: Mapping[str, str] | None = None, **values: Any) -> None:
        """``values`` as the file gives them; ``environ`` (the process's environment unless given) over them."""
        super().__init__(**merged(values, from_environment(Settings, os.environ if environ is None else environ)))

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite3"


def env_keys(environ: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
    """Which settings the environment sets: key path (e.g. ("imap", "port")) -> the variable's name."""
    found: dict[tuple[str, ...], str] = {}
    for name in os.environ if environ is None else environ:
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            found[tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))] = name
    return found


def load_settings(path: Path | None = None, *, required: bool = False) -> Settings:
    """Settings from ``path`` (or the default file, if it exists) and the environment.

    ``required``: the file must exist (the user named it, or the daemon needs an account).
    """
    file = path or default_config_path()
    data: dict[str, Any] = {}
    text = ""
    if file.exists():
        text, data = read_toml(file)
    elif path is not None or required:
        raise UserError([Problem(file=str(file), key="", message=f"no such config file; {setup_advice(path)}")])
    base = file.parent
    for key in ("policies_dir", "state_dir"):
        if isinstance(data.get(key), str):
            data[key] = str((base / os.path.expanduser(data[key])).resolve())
    if isinstance(data.get("submission"), dict):
        for key in ("tls_cert", "tls_key"):
            if isinstance(data["submission"].get(key), str):
                data["submission"][key] = str((base / os.path.expanduser(data["submission"][key])).resolve())
    for section in ("imap", "smtp"):  # ca_file and oauth2_client_file, like the paths above, are relative to it
        for key in ("ca_file", "oauth2_client_file"):
            if isinstance(data.get(section), dict) and isinstance(data[section].get(key), str):
                data[section][key] = str((base / os.path.expanduser(data[section][key])).resolve())
    try:
        return Settings(**data)
    except ValidationError as error:
        problems = problems_from_validation(file, text, error, Settings, env=env_keys())
        raise UserError(problems) from error


def setup_advice(config: Path | None) -> str:
    """What to do before any other command: `mentor-agent setup` (for this config file, when one is named)."""
    option = f" --config {config}" if config is not None and config != default_config_path() else ""
    return f"run `mentor-agent setup{option}` first (it asks for what it needs and writes it)"


def file_kind(path: Path, data: dict[str, Any], *, in_policies_dir: bool = False) -> Literal["policy", "config"]:
    """Whether a TOML file is meant as a policy or as the config, by what it most looks like: its sections
    (misspelt ones count for the name they are closest to), then where it lies and what it is called."""
    import difflib  # only for a file that is not right: not loaded by a daemon whose files are

    from agent.rules.policy import Policy

    def score(known: list[str]) -> int:
        return sum(1 for key in data if key in known or difflib.get_close_matches(key, known, n=1))

    policy, config = score(list(Policy.model_fields)), score(list(Settings.model_fields))
    if policy != config:
        return "policy" if policy > config else "config"
    if in_policies_dir or path.parent.name == "policies":
        return "policy"
    return "config"
