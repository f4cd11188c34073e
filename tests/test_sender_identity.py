"""Whom inbound mail is from: the one address the header registry reads in From. A From that names more than one
address, or that does not parse cleanly (a bare address written as the display name, an address glued to
another), names nobody: it is never a mentor's answer (Python's parseaddr/getaddresses take the first
address-like token of such a field, which the sender chose)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.rules.addresses import author
from agent.rules.envelope import parse_envelope
from agent.rules.meetings import Ignored, apply_reply
from tests.agent_process import MENTOR, OUTBOX, STUDENT, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import gmail, ics
from tests.test_meetings import FROM, NOW, begin, reply, sent_all
from tests.test_meetings_on_fake import Desk, sent_uid, sequential  # noqa: F401 (fixture)
from tests.test_passes_on_fake import Pass, mail

SPOOFS = [
    f"{MENTOR} <mallory@evil.example>",
    f"<{MENTOR}>mallory@evil.example",
    f"{MENTOR}, mallory@evil.example",
    f"Mallory <mallory@evil.example>, {MENTOR}",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"Ana Rivera <{MENTOR}>", MENTOR),
        (f'"Rivera, Ana" <{MENTOR.upper()}>', MENTOR),
        (MENTOR, MENTOR),
        ("José <jos\u00e9@hospital.example.org>", "jos\u00e9@hospital.example.org"),
        (f"=?utf-8?q?Ana_Rivera?= <{MENTOR}> (via Gmail)", MENTOR),
        *((spoof, "") for spoof in SPOOFS),
        ("Ana <arivera@hospital.example.org", ""),
        ("undisclosed-recipients:;", ""),
        ("", ""),
    ],
)
def test_the_author_is_the_one_clean_address_of_from(value: str, expected: str) -> None:
    assert author(value) == expected
    head = f"From: {value}\r\nTo: {STUDENT}\r\nSubject: x\r\n\r\n".encode()
    assert parse_envelope(head).sender == expected


@pytest.mark.parametrize("sender", SPOOFS)
def test_a_calendar_answer_from_someone_else_changes_nothing(sequential: Desk, sender: str) -> None:  # noqa: F811
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", gmail(ics(uid, "ACCEPTED"), sender=sender))
    sequential.settle()
    assert sequential.statuses()[uid] == "sent", f"{sender!r} recorded as Rivera's acceptance"
    assert not sequential.inbox("meeting-copy") and not sequential.notices("accepted")


@pytest.mark.parametrize("sender", SPOOFS[:2])
def test_an_email_from_someone_else_is_not_her_answer(tmp_path: Path, smtp_server: SmtpServer, sender: str) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        made.server.put(OUTBOX, mail("question", message_id="<q1@med.example.edu>"))
        made.run()
        made.server.put(OUTBOX, mail("another"))
        made.run()
        assert made.received() == ["question"] and made.subjects("Scheduled") == ["another"]
        later = datetime.now(UTC) + timedelta(seconds=2)
        made.server.put(
            "INBOX", mail("Re: question", to=STUDENT, sender=sender, at=later, In_Reply_To="<q1@med.example.edu>")
        )
        made.run()
        assert made.received() == ["question"], f"{sender!r}'s mail counted as Rivera's answer"
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize(
    ("auth", "applied"),
    [
        ("mx.uni.example; dkim=pass header.d=hospital.example.org; dmarc=pass header.from=hospital.example.org", True),
        ("mx.uni.example; spf=pass smtp.mailfrom=hospital.example.org", True),  # names no From domain
        ("mx.uni.example; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example", False),
        ("mx.uni.example; dmarc=pass header.from=HOSPITAL.example.org.", True),
    ],
)
def test_authentication_results_for_another_from_domain_are_no_answer(auth: str, applied: bool) -> None:
    """Where Authentication-Results name the From domain they checked (``header.from``), it is hers or the answer
    is not applied: the results were about another From than the one read."""
    state = sent_all(begin()[0])
    uid = state.offers[0].uid
    actions = apply_reply(state, reply(uid), FROM, auth, NOW)[1]
    assert (not any(isinstance(a, Ignored) for a in actions)) is applied, actions


@pytest.mark.parametrize(
    "value",
    [
        f"Dr. Ana Rivera <{MENTOR}>",  # obsolete but common: a period in an unquoted name
        f"Rivera, Ana <{MENTOR}>",
        f"{MENTOR} mallory@evil.example",
        f"{MENTOR}<mallory@evil.example>",
        f"Ana Rivera <{MENTOR}> <mallory@evil.example>",
        f"{MENTOR} (x) <mallory@evil.example>",
        f"<@evil.example:{MENTOR}>",
        f"Ana\r\n Rivera <{MENTOR}>",
    ],
)
def test_the_fast_reading_of_from_agrees_with_the_header_registry(value: str) -> None:
    """:func:`author` reads common forms without the registry: the same answer as the registry's reading."""
    from email import policy

    header = policy.default.header_factory("From", " ".join(value.split()))
    clean = len(header.addresses) == 1 and all("Obsolete" in type(d).__name__ for d in header.defects)
    assert author(value) == (str(header.addresses[0].addr_spec).lower() if clean else "")
