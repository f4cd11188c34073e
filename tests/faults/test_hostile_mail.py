"""Hostile or broken messages in the Outbox: the daemon never stops; each is sent correctly or put in Needs
attention with a notice. Header injection never adds a recipient."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient.exceptions import IMAPClientError

from tests.agent_process import MENTOR, STUDENT, Agent, mail, parse
from tests.faults.accounting import account, folder_subjects, received_subjects, settle

pytestmark = pytest.mark.servers

EVIL = "evil@attacker.example"
HEAD = f"From: Sam Patel <{STUDENT}>\r\nDate: Mon, 7 Sep 2026 09:00:00 +0000\r\n"


def _raw(subject: str, headers: str, body: bytes, *, message_id: bool = True) -> bytes:
    mid = f"Message-ID: <{subject}.{os.urandom(4).hex()}@med.example.edu>\r\n" if message_id else ""
    return (HEAD + mid + f"Subject: {subject}\r\n" + headers).encode() + b"\r\n" + body


def hostile_messages() -> dict[str, bytes]:
    big = base64.encodebytes(os.urandom(25 * 1024 * 1024)).replace(b"\n", b"\r\n")
    crowd = ", ".join(f"person{n}@crowd.example" for n in range(3000))
    return {
        "h-no-recipients": _raw("h-no-recipients", "", b"nobody to send to\r\n"),
        "h-broken-mime": _raw(
            "h-broken-mime",
            f"To: {MENTOR}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n",
            b"--nowhere\r\nContent-Type: text/plain\r\n\r\nno boundary parameter, never closed\r\n",
        ),
        "h-unclosed-multipart": _raw(
            "h-unclosed-multipart",
            f'To: {MENTOR}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n'
            "Content-Transfer-Encoding: x-unknown\r\n",
            b"--b1\r\nContent-Type: text/html; charset=no-such-charset\r\n\r\n<p>\xff\xfe\xfd\r\n--b1\r\n",
        ),
        "h-8bit-junk": (HEAD + f"To: {MENTOR}\r\nMessage-ID: <junk.{os.urandom(4).hex()}@x>\r\n").encode()
        + b"Subject: h-8bit-junk\r\nX-Junk: \xff\xfe\x00\x01\x80\x81 \xc3\x28 \xe2\x82\r\n"
        b"Comments: \x1b[31m red \x07\r\n\r\nbody \xff\r\n",
        "h-8bit-name": (f"To: {MENTOR}\r\nMessage-ID: <name.{os.urandom(4).hex()}@x>\r\n").encode()
        + b"From: \xd0\x9f\xd1\x80\xff\xfe <sam@med.example.edu>\r\nSubject: h-8bit-name\r\n\r\nhi\r\n",
        "h-inject-subject": _raw(
            "h-inject-subject =?utf-8?q?x=0D=0ABcc:_evil@attacker.example=0D=0A?=",
            f"To: {MENTOR}\r\n",
            b"encoded CRLF in the subject\r\n",
        ),
        "h-inject-name": _raw(
            "h-inject-name",
            f"To: =?utf-8?q?Ana=0D=0ABcc:_{EVIL.replace('@', '=40')}?= <{MENTOR}>\r\n",
            b"encoded CRLF in a name\r\n",
        ),
        "h-inject-quoted": _raw(
            "h-inject-quoted", f'To: "Ana\\r\\nCc: {EVIL}" <{MENTOR}>\r\n', b"escaped CRLF in a quoted name\r\n"
        ),
        "h-long-line": _raw("h-long-line", f"To: {MENTOR}\r\n", b"x" * 100_000 + b"\r\nend\r\n"),
        "h-long-header": _raw("h-long-header", f"To: {MENTOR}\r\nX-Long: {'y' * 100_000}\r\n", b"hi\r\n"),
        "h-25mb": _raw(
            "h-25mb",
            'To: friend@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BB"\r\n',
            b"--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--BB\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=big.bin\r\n\r\n"
            + big
            + b"--BB--\r\n",
        ),
        "h-crowd": _raw("h-crowd", f"To: {crowd}\r\n", b"to three thousand people\r\n"),
        "h-no-message-id": _raw("h-no-message-id", f"To: {MENTOR}\r\n", b"hi\r\n", message_id=False),
        "h-empty": b"\r\n",
    }


# -- random MIME --------------------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
# No NUL: IMAP servers refuse it in APPEND (RFC 3501 allows it only in a literal8 with BINARY), so it never
# reaches an Outbox.
_BYTES = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))


@st.composite
def random_mime(draw: st.DrawFn, subject: str) -> bytes:
    to = draw(
        st.sampled_from(
            [
                MENTOR,
                "friend@example.org",
                f"{MENTOR}, friend@example.org",
                "",
                "not an address",
                f"=?utf-8?b?{base64.b64encode(draw(_TEXT).encode()).decode()}?= <{MENTOR}>",
            ]
        )
    )
    content_type = draw(
        st.sampled_from(
            [
                "text/plain; charset=utf-8",
                "text/html; charset=bogus",
                "multipart/mixed; boundary=zz",
                "multipart/mixed",
                'multipart/alternative; boundary=""',
                "application/octet-stream",
                "message/rfc822",
                "text/calendar",
                "",
                "x/y; ;;; =",
            ]
        )
    )
    encoding = draw(st.sampled_from(["", "7bit", "8bit", "base64", "quoted-printable", "x-junk", "binary"]))
    lines = [
        f"From: {draw(_TEXT).replace(chr(13), ' ').replace(chr(10), ' ')!s} <{STUDENT}>".encode(errors="replace"),
        f"Subject: {subject}".encode(),
    ]
    if to:
        lines.append(f"To: {to}".encode())
    if content_type:
        lines.append(b"MIME-Version: 1.0")
        lines.append(f"Content-Type: {content_type}".encode())
    if encoding:
        lines.append(f"Content-Transfer-Encoding: {encoding}".encode())
    for _ in range(draw(st.integers(0, 3))):
        lines.append(b"X-" + draw(st.sampled_from([b"A", b"Junk", b"Ref"])) + b": " + draw(_BYTES))
    parts = draw(
        st.lists(
            st.one_of(
                _BYTES,
                st.just(b"--zz"),
                st.just(b"--zz--"),
                st.just(b"=C3=28"),
                st.just(b"Content-Type: text/plain"),
                st.just(b""),
            ),
            max_size=12,
        )
    )
    return b"\r\n".join(lines) + b"\r\n\r\n" + b"\r\n".join(parts) + b"\r\n"


def test_hostile_and_random_mail_never_stops_the_daemon(agent: Agent, soak: bool, figures: Callable[..., Any]) -> None:
    agent.start()
    hostile = hostile_messages()

    def _key(subject: object) -> str:
        return str(subject).removeprefix("[mentor-agent] Not sent: ").split()[0]

    for raw in hostile.values():
        agent.drop(raw)
    dropped: list[str] = []
    refused: list[str] = []

    @settings(
        max_examples=60 if soak else 6,
        database=None,
        deadline=None,
        derandomize=not soak,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def drop_random(data: st.DataObject) -> None:
        subject = f"r-{len(dropped):03d}"
        raw = data.draw(random_mime(subject))
        try:
            agent.drop(raw)
        except IMAPClientError as error:  # the server would not store it: it can never reach the agent
            refused.append(f"{subject}: {error}")
            return
        dropped.append(subject)

    drop_random()
    named = [s for s in hostile if s != "h-empty"]  # an empty message has no subject to find it by
    subjects = named + dropped
    waited = settle(agent, subjects, timeout=240 if soak else 120)
    tally = account(agent, subjects)
    received = agent.smtp.messages
    recipients = {r for message in received for r in message.rcpt_tos}
    why = {
        _key(n["Subject"]): n.get_content().split("\n")[0][:160]
        for n in agent.notices()
        if str(n["Subject"]).startswith("[mentor-agent] Not sent")
    }
    empty_quarantined = any(m["Subject"] is None for m in agent.folder("Needs attention"))
    figures(
        tries=len(hostile) + len(dropped),
        hostile=len(hostile),
        random=len(dropped),
        refused_by_imap=refused,
        survived=len(subjects) - len(tally.lost) - len(tally.duplicated) + int(empty_quarantined),
        **tally.figures(),
        needs_attention=why,
        settle_seconds=round(waited, 1),
    )
    assert not agent.process_ended(), agent.log()[-3000:]
    assert tally.lost == [], f"neither sent nor in Needs attention: {tally.lost}\n{agent.log()[-4000:]}"
    assert tally.duplicated == []
    assert empty_quarantined, "the empty message is neither sent nor in Needs attention"
    assert tally.unreported_attention == [], f"in Needs attention with no notice: {tally.unreported_attention}"
    assert EVIL not in recipients, "a header injection added a recipient"
    assert agent.folder_raw("Outbox") == {} or set(agent.subjects("Outbox")) <= {""}, agent.subjects("Outbox")
    got = received_subjects(agent)
    assert "h-no-recipients" in folder_subjects(agent, "Needs attention")
    if got["h-long-line"]:  # sent: then byte for byte (no silent rewrap of the body)
        body = next(m.content for m in received if b"Subject: h-long-line" in m.content).split(b"\r\n\r\n", 1)[1]
        assert b"x" * 100_000 in body
    if got["h-crowd"]:
        assert len(next(m for m in received if b"Subject: h-crowd" in m.content).rcpt_tos) == 3000
    if got["h-no-message-id"]:
        assert parse(next(m.content for m in received if b"Subject: h-no-message-id" in m.content))["Message-ID"]
    # Still working: an ordinary message goes straight through afterwards.
    before = len(agent.smtp.messages)
    agent.drop(mail("after the storm"))
    assert agent.smtp.wait_for(before + 1, timeout=30)
    time.sleep(0.5)
