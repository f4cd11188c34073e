"""Logging for a daemon read through the journal: one line per event, secrets never written.

``setup_logging`` installs one handler on the root logger. Its lines read well in ``journalctl`` (no
timestamp of our own when stderr is the journal, a ``<N>`` syslog priority prefix so ``journalctl -p warning``
works) and in a terminal; ``json=True`` writes one JSON object per line instead.

Every value passed to ``register_secret`` (``agent.mail.credentials.resolve`` does it for each password and token it
finds) is replaced by ``***`` in every record the handler writes: message, arguments, extra fields, exception
and stack text.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, TextIO

from agent.errors import UserError

REDACTED = "***"
_MAX_SECRETS = 256  # OAuth2 tokens change hourly; old ones fall out rather than slow every log line
_secrets: OrderedDict[str, None] = OrderedDict()
_secrets_lock = threading.Lock()

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

# journald reads a "<N>" prefix as the syslog priority of the line (SyslogLevelPrefix=yes, the default).
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def register_secret(value: str) -> None:
    """Redact ``value`` from every log record from now on."""
    if not value:
        return
    with _secrets_lock:
        _secrets[value] = None
        _secrets.move_to_end(value)
        while len(_secrets) > _MAX_SECRETS:
            _secrets.popitem(last=False)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first, so no tail survives)."""
    with _secrets_lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = repr(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no registered secret is left in it. Attach to handlers, not loggers:
    a handler's filters see the records of every child logger, a logger's only its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not turn logging into a crash
            message = f"{record.msg!r} % {record.args!r} (the log call's arguments do not fit its format)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        # The formatters below use exc_text; drop the live exception so no other formatter re-renders it.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _redact_value(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2024-05-01 09:00:00,123 INFO agent.daemon.service: message``.

    In the journal: ``<6>agent.daemon.service: message``.
    """

    def __init__(self, *, journal: bool) -> None:
        super().__init__("%(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        # journald makes one entry per line: give each line of a traceback the record's priority.
        prefix = f"<{_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return jsonlib.dumps(entry, ensure_ascii=False, default=str)


def writes_to_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal: systemd sets ``$JOURNAL_STREAM`` to ``device:inode`` of the
    stream it connected, and a child's redirected stderr no longer matches it (systemd.exec(5))."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return value == f"{stat.st_dev}:{stat.st_ino}"


def setup_logging(level: str = "INFO", json: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr by default), redacted; replaces an earlier call's handler."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise UserError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if json else TextFormatter(journal=writes_to_journal(out)))
    handler.addFilter(RedactingFilter())
    handler.set_name("mentor-agent")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "mentor-agent"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def short_id(key: str) -> str:
    """The handle ``status``, ``release`` and ``cancel`` show for a message (same as agent.store.status.short_id)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def named(key: str, subject: str) -> str:
    """How a log line names a message: ``[3f2a9c1e] “Draft of my personal statement”``."""
    return f"[{short_id(key)}] “{_one_line(subject) or '(no subject)'}”"


def log_decision(
    logger: logging.Logger,
    message_id: str,
    mentor: str,
    decision: str,
    reason: str,
    *,
    subject: str = "",
    level: int = logging.INFO,
) -> None:
    """One line per decision with its reason, e.g. ``decision=delay mentor=rivera id=3f2a9c1e
    subject="Draft" message_id=<a@b> reason: 2nd message today; …``; the same as fields with --json-logs."""
    if not logger.isEnabledFor(level):
        return  # not formatted for nothing: a backlog's thousands of DEBUG lines are off at INFO
    fields = {
        key: _one_line(value)
        for key, value in {
            "message_id": message_id,
            "mentor": mentor,
            "decision": decision,
            "reason": reason,
            "id": short_id(message_id),
            "subject": subject,
        }.items()
    }
    logger.log(
        level,
        "decision=%s mentor=%s id=%s subject=%s message_id=%s reason: %s",
        fields["decision"],
        fields["mentor"],
        fields["id"],
        jsonlib.dumps(fields["subject"], ensure_ascii=False),
        fields["message_id"],
        fields["reason"],
        extra=fields,
    )
