"""The submission door in the test process: the listener and the desk against the real Dovecot (or none at all),
and what a submitted message becomes on its way into the Outbox (pure)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config.settings import Imap, Settings, Submission
from agent.mail.session import Login
from agent.mail.submission import Listener, local_secret
from agent.reconcile.doors.submission import SUBMITTED, SubmissionDesk
from agent.rules.envelope import parse_envelope
from agent.rules.policy import PolicyBook
from agent.rules.submitted import as_submitted
from agent.store.ledger import ATTENTION, Ledger
from tests.agent_process import MENTOR, OUTBOX, STUDENT, mail
from tests.servers import free_port
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.test_ledger import row

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_bcc_only_in_the_envelope_is_written_back_as_bcc() -> None:
    raw = mail("Hello", to=MENTOR, Cc="a@example.org")
    done = as_submitted(raw, [MENTOR.upper(), "a@example.org", "dean@med.example.edu"], domain="x.edu", now=NOW)
    assert done.added_bcc == ("dean@med.example.edu",)
    assert done.envelope.recipients == (MENTOR, "a@example.org", "dean@med.example.edu")
    assert done.not_in_envelope == ()
    assert done.raw.endswith(raw.split(b"\r\n\r\n", 1)[1])  # the body byte for byte


def test_a_header_recipient_left_out_of_the_envelope_is_reported() -> None:
    done = as_submitted(mail("Hi", to=f"{MENTOR}, b@example.org"), [MENTOR], domain="x.edu", now=NOW)
    assert done.not_in_envelope == ("b@example.org",)


def test_a_message_without_id_or_date_gets_them_and_the_same_id_when_sent_again() -> None:
    raw = b"From: s@x.edu\r\nTo: m@h.org\r\nSubject: s\r\n\r\nbody\r\n"
    first = as_submitted(raw, ["m@h.org"], domain="x.edu", now=NOW)
    again = as_submitted(raw, ["m@h.org"], domain="x.edu", now=datetime(2026, 12, 8, tzinfo=UTC))
    assert first.envelope.message_id is not None and first.envelope.message_id.endswith("@x.edu>")
    assert first.envelope.message_id == again.envelope.message_id
    assert parse_envelope(first.raw).date == NOW
    assert as_submitted(raw, ["other@h.org", "m@h.org"], domain="x.edu", now=NOW).envelope.message_id != (
        first.envelope.message_id
    )


def _desk_and_door(tmp_path: Path, imap: Imap, login: Login) -> tuple[SubmissionDesk, Listener, Ledger]:
    config = Submission(port=free_port())
    settings = Settings(imap=imap, state_dir=tmp_path, policies_dir=tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    desk = SubmissionDesk(settings, ledger, lambda: PolicyBook([]), lambda: login, lambda: None, lambda: NOW)
    return desk, Listener(config, local_secret(tmp_path), desk.hand_over), ledger


def _send(port: int, secret: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.login("mentor-agent", secret)
        client.mail(STUDENT)
        client.rcpt("friend@example.org")
        return client.data(raw)


@pytest.mark.servers
def test_imap_down_is_451_and_the_retry_is_taken_once(
    tmp_path: Path, dovecot: Dovecot, imap_user: User, imap: Imap
) -> None:
    with dovecot.client(imap_user) as client:
        client.create_folder(OUTBOX)
    login = Login(imap_user.username, password=imap_user.password)
    down = imap.model_copy(update={"port": free_port(), "timeout": 2.0})  # nothing listens there
    raw = mail("While the server was down", to="friend@example.org")

    async def main() -> list[tuple[int, bytes]]:
        desk, door, ledger = _desk_and_door(tmp_path, down, login)
        secret = local_secret(tmp_path)
        await door.start()
        try:
            answers = [await asyncio.to_thread(_send, door.config.port, secret, raw)]
            assert dovecot.messages(imap_user, OUTBOX) == {}
            desk.settings = desk.settings.model_copy(update={"imap": imap})  # the server is back
            answers.append(await asyncio.to_thread(_send, door.config.port, secret, raw))
            answers.append(await asyncio.to_thread(_send, door.config.port, secret, raw))  # a 250 that was lost
        finally:
            await door.close()
            ledger.close()
        return answers

    (code1, text1), (code2, _), (code3, _) = asyncio.run(main())
    assert code1 == 451 and b"try again" in text1
    assert (code2, code3) == (250, 250)
    assert [b"While the server was down" in m for m in dovecot.messages(imap_user, OUTBOX).values()] == [True]


def test_the_local_password_is_made_once_and_private(tmp_path: Path) -> None:
    first = local_secret(tmp_path)
    assert len(first) >= 30 and local_secret(tmp_path) == first
    assert (tmp_path / "submission-password").stat().st_mode & 0o077 == 0


def test_listening_beyond_loopback_without_tls_is_a_config_error(tmp_path: Path) -> None:
    from agent.config.settings import load_settings
    from agent.errors import UserError

    config = tmp_path / "config.toml"
    config.write_text('[submission]\nlisten = "0.0.0.0"\nport = 1587\n')
    with pytest.raises(UserError) as raised:
        load_settings(config)
    problem = raised.value.problems[0]
    assert (problem.file, problem.key) == (str(config), "submission.listen")
    assert "in the clear" in problem.message


def test_with_tls_the_door_wants_starttls_before_anything_and_then_takes_mail(tmp_path: Path, tls_ca: TlsFiles) -> None:
    config = Submission(port=free_port(), tls_cert=tls_ca.cert_pem, tls_key=tls_ca.key_pem)
    assert Submission(listen="0.0.0.0", tls_cert=tls_ca.cert_pem, tls_key=tls_ca.key_pem).loopback is False
    assert Submission(listen="127.0.0.2").loopback  # all of 127.0.0.0/8 is this computer
    got: list[tuple[str, list[str]]] = []

    async def hand_over(mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> str:
        got.append((mail_from, list(rcpt_tos)))
        return "250 2.0.0 taken"

    def clear_text() -> int:
        with smtplib.SMTP("127.0.0.1", config.port, timeout=20) as client:
            client.ehlo()
            return client.mail(STUDENT)[0]

    def over_tls(secret: str) -> None:
        with smtplib.SMTP("127.0.0.1", config.port, timeout=20) as client:
            client.starttls(context=ssl.create_default_context(cafile=str(tls_ca.ca_pem)))
            client.login("mentor-agent", secret)
            client.sendmail(STUDENT, [MENTOR], mail("Over TLS"))

    async def main() -> int:
        door = Listener(config, local_secret(tmp_path), hand_over)
        await door.start()
        try:
            refused = await asyncio.to_thread(clear_text)
            await asyncio.to_thread(over_tls, local_secret(tmp_path))
        finally:
            await door.close()
        return refused

    assert asyncio.run(main()) == 530
    assert got == [(STUDENT, [MENTOR])]


def _handed_over_again(
    tmp_path: Path, dovecot: Dovecot, imap_user: User, imap: Imap, subject: str, known: Callable[[Ledger, str], None]
) -> tuple[int, bytes]:
    """A message handed to the door while the ledger knows it as ``known`` writes it (key = its Message-ID)."""
    with dovecot.client(imap_user) as client:
        client.create_folder(OUTBOX)
    raw = mail(subject, to="friend@example.org")
    key = str(parse_envelope(raw).message_id)

    async def main() -> tuple[int, bytes]:
        _, door, ledger = _desk_and_door(tmp_path, imap, Login(imap_user.username, password=imap_user.password))
        known(ledger, key)
        await door.start()
        try:
            return await asyncio.to_thread(_send, door.config.port, local_secret(tmp_path), raw)
        finally:
            await door.close()
            ledger.close()

    return asyncio.run(main())


@pytest.mark.servers
@pytest.mark.parametrize(("state", "taken"), [("scheduled", False), ("done", False), ("cancelled", True)])
def test_a_message_known_to_the_ledger_is_taken_again_only_when_it_was_cancelled(
    tmp_path: Path, dovecot: Dovecot, imap_user: User, imap: Imap, state: str, taken: bool
) -> None:
    def known(ledger: Ledger, key: str) -> None:
        ledger.add(row(key=key, message_id=key, state=state))

    code, _ = _handed_over_again(tmp_path, dovecot, imap_user, imap, "Cancelled, then sent from Drafts", known)
    assert code == 250
    assert len(dovecot.messages(imap_user, OUTBOX)) == (1 if taken else 0)


@pytest.mark.servers
@pytest.mark.parametrize("answered_ago", [timedelta(minutes=1), timedelta(minutes=20)])
def test_a_send_in_doubt_handed_over_again_is_refused_with_why(
    tmp_path: Path, dovecot: Dovecot, imap_user: User, imap: Imap, answered_ago: timedelta
) -> None:
    """Two hostile rounds: the mentor got it twice (her program's retry of a 250 it never read, taken as a new
    try), then her deliberate resend was answered 250 and silently not sent. Handed over again while its send is
    in doubt, it is refused with why (her program says so, and keeps it): moved back to the Outbox, it goes."""

    def known(ledger: Ledger, key: str) -> None:
        ledger.add(row(key=key, message_id=key, state=ATTENTION, sent_at=datetime.now(UTC) - answered_ago))
        ledger.log(SUBMITTED, message=key, detail="via the door")
        at = (datetime.now(UTC) - answered_ago).isoformat()
        ledger.db.execute("UPDATE log SET at = ? WHERE event = ? AND message = ?", (at, SUBMITTED, key))

    code, text = _handed_over_again(tmp_path, dovecot, imap_user, imap, "In doubt, then handed over again", known)
    assert code == 550 and b"in doubt" in text and b"move its copy from Needs attention" in text
    assert dovecot.messages(imap_user, OUTBOX) == {}
