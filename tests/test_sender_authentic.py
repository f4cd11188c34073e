"""Who an answer is from, on every path that records one (a meeting answer, her answer to a suggestion, a reply
that releases held mail): one From address written as a mail program writes it, a domain that is the one DNS and
DMARC know (never a look-alike folded into hers), any of the mentor's addresses, and Authentication-Results that
do not say otherwise (addresses.author, authenticity.auth_problem). A reply to her mail that names nobody is told
to the student, never dropped silently."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.rules.addresses import author
from agent.rules.authenticity import auth_problem
from agent.rules.envelope import parse_envelope
from agent.rules.meetings import Ignored, apply_reply
from tests.agent_process import OUTBOX, STUDENT, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, gmail, ics, meeting_policy
from tests.test_meeting_suggest_on_fake import answer, queue, requests, stored, suggestions, waiting  # noqa: F401
from tests.test_meetings import FROM, NOW, begin, kinds, reply, sent_all
from tests.test_meetings_on_fake import Desk
from tests.test_passes_on_fake import Pass, mail

RIVERA = "arivera@hospital.example.org"
SECOND = "ana.rivera@hospital.example.org"
LOOKALIKES = ["hospital.example\uff0eorg", "hospital.example.o\u200brg", "hospit\u00adal.example.org"]


@pytest.mark.parametrize("domain", LOOKALIKES)
def test_a_domain_that_is_another_in_dns_is_not_folded_into_hers(domain: str) -> None:
    assert author(f"Ana Rivera <arivera@{domain}>") not in ("", RIVERA)
    assert author(f"arivera@{domain}") not in ("", RIVERA)


@pytest.mark.parametrize(
    "domain", ["hospital.example.org", "HOSPITAL.Example.org", "hospital.example.org.", "xn--hospitl-bxa.example.org"]
)
def test_her_domain_in_any_case_or_form_is_still_hers(domain: str) -> None:
    expected = "arivera@xn--hospitl-bxa.example.org" if "xn--" in domain else RIVERA
    assert author(f"Ana <arivera@{domain}>") == expected
    assert author("Ana <ARivera@Hospitäl.example.org>") == "arivera@xn--hospitl-bxa.example.org"


@pytest.mark.parametrize(
    "value", ['"=?utf-8?Q?Ana_Rivera?=" <arivera@hospital.example.org>', '"=?utf-8?B?R2FyY8OtYSwgQW5h?=" <{}>']
)
def test_an_encoded_word_inside_quotes_still_names_her(value: str) -> None:
    assert author(value.format(RIVERA)) == RIVERA


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        ("mx; dkim=pass header.d=hospital.example.org; dmarc=pass header.from=hospital.example.org", False),
        # one signature broken by a gateway beside one that passes, DMARC pass: a failed signature is none
        (
            "mx; dkim=fail (body hash) header.d=x.onmicrosoft.com; dkim=pass header.d=hospital.example.org; "
            "dmarc=pass (p=REJECT) header.from=hospital.example.org",
            False,
        ),
        ("mx; dkim=fail header.d=hospital.example.org; dkim=pass header.d=hospital.example.org", False),
        ("mx; dkim=fail (bad signature); dmarc=pass", True),  # DMARC about no named domain: DKIM decides
        ("mx; dkim=fail header.d=hospital.example.org; dkim=pass header.d=evil.example", True),
        ("mx; spf=none; dkim=none; dmarc=fail header.from=hospital.example.org", True),
        ("mx; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example", True),
        ("mx; spf=pass smtp.mailfrom=hospital.example.org", False),
        ("", False),
        # Microsoft's own verdict on a spoof, for a domain that publishes no DMARC policy
        (
            "spf=fail (sender IP is 192.0.2.7) smtp.mailfrom=hospital.example.org; dkim=none (message not signed) "
            "header.d=none;dmarc=none action=none header.from=hospital.example.org;compauth=fail reason=001",
            True,
        ),
        (
            "spf=pass smtp.mailfrom=hospital.example.org; dkim=none header.d=none; dmarc=none action=none "
            "header.from=hospital.example.org; compauth=pass reason=109",
            False,
        ),
    ],
)
def test_authentication_results_decide_by_dmarc_then_by_a_passing_signature(results: str, problem: bool) -> None:
    assert (auth_problem(results, RIVERA) is not None) is problem


def test_a_genuine_accept_beside_a_broken_signature_is_applied() -> None:
    state = sent_all(begin()[0])
    results = (
        "mx; dkim=fail header.d=x.onmicrosoft.com; dkim=pass header.d=hospital.example.org; "
        "dmarc=pass header.from=hospital.example.org"
    )
    actions = apply_reply(state, reply(state.offers[0].uid), FROM, results, NOW)[1]
    assert kinds(actions) == ["RecordMeeting", "SendStudentCopy", "NotifyStudent"], actions


@pytest.mark.parametrize("attendee", ["ana.rivera@hospital.example.org", RIVERA])
def test_her_answer_from_her_second_address_is_hers(attendee: str) -> None:
    state = sent_all(begin()[0])
    addresses = (RIVERA, SECOND)
    answer_ = reply(state.offers[0].uid, attendee=attendee)
    sender = f"Ana Rivera <{SECOND}>"
    actions = apply_reply(state, answer_, sender, None, NOW, addresses=addresses)[1]
    assert kinds(actions) == ["RecordMeeting", "SendStudentCopy", "NotifyStudent"], actions
    ignored = apply_reply(state, answer_, sender, None, NOW)[1]  # not one of her addresses: nobody's answer
    assert isinstance(ignored[0], Ignored)


@pytest.mark.parametrize(
    ("sender", "auth"),
    [
        (
            f"Sam Patel <{STUDENT}>",
            "dkim=pass header.d=evil.example; spf=pass; dmarc=pass header.from=evil.example",
        ),
        ("Sam Patel <sam@med.example\uff0eedu>", "dkim=none; spf=none; dmarc=none header.from=med.example\uff0eedu"),
    ],
    ids=["dmarc for another domain", "fullwidth dot"],
)
def test_a_strangers_answer_to_a_suggestion_is_not_hers(waiting: Desk, sender: str, auth: str) -> None:  # noqa: F811
    queue(waiting, "one", "two", "three")
    extra: dict[str, Any] = {"attendee": "sam@med.example\uff0eedu"} if "\uff0e" in sender else {}
    answer(waiting, suggestions(waiting)[0], "ACCEPTED", sender=sender, auth=auth, **extra)
    waiting.settle()
    assert requests(waiting) == [] and "answer" not in stored(waiting)[0].extra, "a stranger's answer applied"


@pytest.fixture
def held(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    """Her question went; the next one is held until Rivera answers (max_unanswered = 1)."""
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    made.server.put(OUTBOX, mail("question", message_id="<q1@med.example.edu>"))
    made.run()
    made.server.put(OUTBOX, mail("another"))
    made.run()
    assert made.received() == ["question"] and made.subjects("Scheduled") == ["another"]
    yield made
    made.world.ledger.close()


def _reply(made: Pass, sender: str, **headers: str) -> None:
    later = datetime.now(UTC) + timedelta(seconds=2)
    made.server.put(
        "INBOX",
        mail("Re: question", to=STUDENT, sender=sender, at=later, In_Reply_To="<q1@med.example.edu>", **headers),
    )
    made.run()
    made.run()


@pytest.mark.parametrize(
    ("domain", "results"),
    [
        *((domain, f"mx; spf=none; dkim=none; dmarc=none header.from={domain}") for domain in LOOKALIKES),
        ("hospital.example.org", "mx; spf=none; dkim=none; dmarc=fail header.from=hospital.example.org"),
    ],
)
def test_a_reply_from_a_lookalike_or_failing_dmarc_releases_nothing(held: Pass, domain: str, results: str) -> None:
    _reply(held, f"Ana Rivera <arivera@{domain}>", Authentication_Results=results)
    held.run()
    assert held.received() == ["question"], "mail that is not Rivera's counted as her answer"
    told = [s for s in held.subjects("INBOX") if "A reply from an address not in" in s or "did not count" in s]
    assert len(told) == 1, held.subjects("INBOX")  # whoever wrote it, the student is told once


@pytest.mark.parametrize("sender", ['"=?utf-8?B?R2FyY8OtYSBSaXZlcmEsIEFuYQ==?=" <{}>', '"=?utf-8?Q?Ana_Rivera?=" <{}>'])
def test_her_reply_with_an_encoded_quoted_name_releases_held_mail(held: Pass, sender: str) -> None:
    _reply(held, sender.format(RIVERA))
    assert held.received() == ["question", "another"], "her reply did not release held mail"


def test_a_reply_to_her_mail_that_names_nobody_is_told_once(held: Pass) -> None:
    _reply(held, f"Ana <{RIVERA}> <mallory@evil.example>")
    held.run()
    assert held.received() == ["question"]
    told = [s for s in held.subjects("INBOX") if "From names no one address" in s]
    assert len(told) == 1, held.subjects("INBOX")


def test_an_idn_mentors_accept_with_results_in_unicode_is_hers(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Her provider may write the checked domain as a U-label (RFC 8616), in UTF-8: read as written, not garbled."""
    idn = "arivera@hospit\u00e4l.example.org"
    desk = Desk(tmp_path, smtp_server, meeting_policy(strategy="sequential").replace(RIVERA, idn))
    try:
        desk.propose()
        desk.settle()
        uid = str(event_of(desk.smtp.messages[0].content)["UID"])
        results = "dkim=pass header.d=hospit\u00e4l.example.org; dmarc=pass header.from=hospit\u00e4l.example.org"
        desk.server.put("INBOX", gmail(ics(uid, "ACCEPTED", attendee=idn), sender=f"Ana <{idn}>", auth=results))
        desk.settle()
        assert desk.statuses()[uid] == "accepted", desk.notices()
    finally:
        desk.close()


@pytest.mark.parametrize("attendee", [SECOND, RIVERA])
def test_her_calendar_answer_from_her_second_address_is_applied(
    tmp_path: Path, smtp_server: SmtpServer, attendee: str
) -> None:
    policy = meeting_policy(strategy="sequential").replace(f'["{RIVERA}"]', f'["{RIVERA}", "{SECOND}"]')
    desk = Desk(tmp_path, smtp_server, policy)
    try:
        desk.propose()
        desk.settle()
        uid = str(event_of(desk.smtp.messages[0].content)["UID"])
        desk.server.put("INBOX", gmail(ics(uid, "ACCEPTED", attendee=attendee), sender=f"Ana Rivera <{SECOND}>"))
        desk.settle()
        assert desk.statuses()[uid] == "accepted", desk.notices()
    finally:
        desk.close()


def test_her_accept_of_an_invitation_withdrawn_in_doubt_is_told_never_recorded_silently() -> None:
    """The server may have stored an invitation the agent could not confirm (in doubt: withdrawn, in Needs
    attention); her ACCEPT proves it arrived. Not recorded (the offer was withdrawn), but the student is told."""
    state = begin()[0]
    offer = state.offers[0]
    state = replace(state, offers=(replace(offer, status="cancelled"), *state.offers[1:]))
    after, actions = apply_reply(state, reply(offer.uid), FROM, None, NOW)
    assert after == state and kinds(actions) == ["NotifyStudent"], actions
    assert "confirm with them yourself" in actions[0].text  # type: ignore[union-attr]
    planned = apply_reply(begin()[0], reply(offer.uid), FROM, None, NOW)[1]  # never sent nor withdrawn: no answer
    assert isinstance(planned[0], Ignored)


def test_an_invitation_that_could_not_go_and_is_moved_back_stays_visible(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Refused (no SMTPUTF8 for José's address): the offer is withdrawn, so the notice does not invite a retry
    that cannot work; moved back to the Outbox anyway, it is filed in Needs attention again with a notice saying
    why, never deleted."""
    jose = "jos\u00e9@hospital.example.org"
    desk = Desk(tmp_path, smtp_server, meeting_policy(strategy="sequential").replace(RIVERA, jose))
    try:
        desk.propose()
        desk.settle()
        assert desk.smtp.messages == [] and len(desk.server.messages("Needs attention")) == 1
        texts = [m.get_body(("plain",)).get_content() for m in desk.inbox("notice")]  # type: ignore[union-attr]
        assert not any("try again" in text for text in texts), texts
        (uid, raw), *_ = desk.server.messages("Needs attention").items()
        desk.server.put(OUTBOX, raw)  # the student moves it back
        asyncio.run(desk.world.imap(desk.box.delete, "Needs attention", uid))
        before = len(desk.notices())
        desk.settle()
        assert desk.smtp.messages == []
        assert len(desk.server.messages("Needs attention")) == 1, {f: desk.subjects(f) for f in desk.server.folders}
        assert len(desk.notices()) == before + 1, desk.notices()
    finally:
        desk.close()


def test_headers_written_in_utf8_are_read_as_written() -> None:
    """RFC 6532: an IDN mentor's mail program writes headers in UTF-8; read as such (not U+FFFD), in notices too."""
    head = (
        "Subject: Café für José\r\nFrom: José <josé@hospitäl.example.org>\r\nTo: x@y.example\r\n"
        "Authentication-Results: mx; dmarc=pass header.from=hospitäl.example.org\r\n\r\n"
    ).encode()
    envelope = parse_envelope(head)
    assert envelope.subject == "Café für José"
    assert envelope.authentication == "mx; dmarc=pass header.from=hospitäl.example.org"
    assert envelope.sender == "josé@xn--hospitl-bxa.example.org"
