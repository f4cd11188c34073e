"""Log lines: one per event, journal-friendly, JSON on request, and never a registered secret."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import logs
from agent.errors import UserError

SECRET = "hunter2-Zq9!secret"


@pytest.fixture(autouse=True)
def restore_root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_line_has_time_level_logger_and_message() -> None:
    out = io.StringIO()
    logs.setup_logging("INFO", stream=out)
    logging.getLogger("agent.daemon.service").info("connected to %s", "imap.example.org")
    logging.getLogger("agent.daemon.service").debug("not shown at INFO")
    (line,) = lines(out)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO agent\.daemon\.service: connected to imap\.example\.org", line
    )


def test_journal_lines_carry_priority_and_no_timestamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w+", encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        logs.setup_logging("DEBUG", stream=stream)
        logging.getLogger("agent.x").warning("slow server")
        logging.getLogger("agent.x").debug("detail")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("agent.x").exception("pass failed")
        stream.seek(0)
        written = stream.read().splitlines()
    assert written[:3] == ["<4>agent.x: slow server", "<7>agent.x: detail", "<3>agent.x: pass failed"]
    # every traceback line is its own journal entry: each keeps the error priority
    assert len(written) > 4 and all(line.startswith("<3>") for line in written[2:])
    assert written[-1] == "<3>ValueError: boom"


def test_journal_stream_of_another_file_is_not_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    with open(tmp_path / "log", "w+", encoding="utf-8") as stream:
        assert not logs.writes_to_journal(stream)
        info = os.fstat(stream.fileno())
        assert logs.writes_to_journal(stream, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert not logs.writes_to_journal(io.StringIO(), {"JOURNAL_STREAM": "1:1"})


def test_json_lines_with_extra_fields_and_exception() -> None:
    out = io.StringIO()
    logs.setup_logging("INFO", json=True, stream=out)
    log = logging.getLogger("agent.rules.pacing")
    log.info("sent %d", 3, extra={"mentor": "rivera"})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.error("failed", exc_info=True)
    first, second = (json.loads(line) for line in lines(out))
    assert set(first) == {"time", "level", "logger", "message", "mentor"}
    assert (first["level"], first["logger"], first["message"], first["mentor"]) == (
        "INFO",
        "agent.rules.pacing",
        "sent 3",
        "rivera",
    )
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ZeroDivisionError" in second["exception"]


def test_registered_secret_is_redacted_everywhere() -> None:
    logs.register_secret(SECRET)
    out = io.StringIO()
    logs.setup_logging("DEBUG", stream=out)
    log = logging.getLogger("agent.child.of.root")  # propagates to the root handler
    log.info("password is %s", SECRET)
    log.info(f"inline {SECRET}")
    log.info("extra", extra={"detail": {"pw": SECRET}, "plain": SECRET})
    log.info("stack", stack_info=True, extra={"note": SECRET})
    try:
        raise RuntimeError(f"login failed for {SECRET}")
    except RuntimeError:
        log.exception("with traceback")
    json_out = io.StringIO()
    logs.setup_logging("DEBUG", json=True, stream=json_out)
    log.warning("json %s", SECRET, extra={"field": SECRET})
    try:
        raise RuntimeError(SECRET)
    except RuntimeError:
        log.exception("json traceback")
    text = out.getvalue() + json_out.getvalue()
    assert SECRET not in text
    assert "password is ***" in text and "inline ***" in text and "RuntimeError: login failed for ***" in text
    warning, failure = (json.loads(line) for line in lines(json_out))
    assert (warning["message"], warning["field"]) == ("json ***", "***")
    assert failure["exception"].endswith("RuntimeError: ***")


def test_longer_secret_is_redacted_before_its_prefix() -> None:
    logs.register_secret("abcd1234")
    logs.register_secret("abcd1234-extended")
    assert logs.redact("x abcd1234-extended y abcd1234") == "x *** y ***"


def test_bad_log_arguments_do_not_make_the_filter_raise() -> None:
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert logs.RedactingFilter().filter(record)
    assert record.args is None and "do not fit its format" in record.getMessage()


def test_extra_objects_holding_a_secret_become_their_redacted_repr() -> None:
    logs.register_secret(SECRET)
    record = logging.makeLogRecord({"msg": "m", "detail": {"pw": SECRET}, "count": 3})
    logs.RedactingFilter().filter(record)
    assert vars(record)["detail"] == "{'pw': '***'}" and vars(record)["count"] == 3


def test_setup_twice_leaves_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.setup_logging(stream=first)
    logs.setup_logging(stream=second)
    logging.getLogger("agent").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1
    assert sum(h.get_name() == "mentor-agent" for h in logging.getLogger().handlers) == 1


def test_unknown_level_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown log level 'LOUD'"):
        logs.setup_logging("LOUD", stream=io.StringIO())


def test_decision_is_one_line_with_reason() -> None:
    out, json_out = io.StringIO(), io.StringIO()
    logs.setup_logging("INFO", stream=out)
    logs.log_decision(
        logging.getLogger("agent.rules.pacing"), "<a@b>", "rivera", "delay", "3 sent today,\nmax_per_day is 3"
    )
    (line,) = lines(out)
    assert line.endswith(
        f'agent.rules.pacing: decision=delay mentor=rivera id={logs.short_id("<a@b>")} subject="" '
        "message_id=<a@b> reason: 3 sent today, max_per_day is 3"
    )
    logs.setup_logging("INFO", json=True, stream=json_out)
    logs.log_decision(logging.getLogger("agent.rules.pacing"), "<a@b>", "rivera", "send", "within budget")
    entry = json.loads(json_out.getvalue())
    assert {k: entry[k] for k in ("message_id", "mentor", "decision", "reason")} == {
        "message_id": "<a@b>",
        "mentor": "rivera",
        "decision": "send",
        "reason": "within budget",
    }
