"""Only a person's answer is an answer: the corpus of real-shaped auto-replies, read receipts and delivery
reports (tests/corpus/), each classified from its header block, and each delivery report read for the message
it is about, the failed recipient and the server's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.rules.answer_kind import classify, read_delivery_report

CORPUS = Path(__file__).parent / "corpus"
KINDS = {"auto_replies": "auto-reply", "read_receipts": "read-receipt", "dsn": "delivery-report", "people": "person"}
# The mentors' answers to the agreement (tests/corpus/agreement_answers/) are people's mail too, from every client.
FILES = sorted(p for folder in [*KINDS, "agreement_answers"] for p in (CORPUS / folder).glob("*.eml"))
KINDS["agreement_answers"] = "person"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_message_of_the_corpus_is_what_its_folder_says(path: Path) -> None:
    verdict = classify(path.read_bytes())
    assert verdict.kind == KINDS[path.parent.name], verdict.sign
    assert verdict.answer == (verdict.kind == "person")
    assert bool(verdict.sign) != verdict.answer, "a machine's mail names the sign it was known by"


def test_the_corpus_has_each_kind_from_several_systems() -> None:
    by_folder = {folder: len(list((CORPUS / folder).glob("*.eml"))) for folder in KINDS}
    assert by_folder["agreement_answers"] >= 40
    assert min(by_folder.values()) >= 2, by_folder


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("postfix_user_unknown.eml", "5.1.1", "550 5.1.1 <arivera@hospital.example.org>: Recipient address rejected"),
        ("exchange_ndr.eml", "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"),
        ("gmail_mailbox_full.eml", "5.2.2", "552 5.2.2 The email account that you tried to reach is over quota."),
    ],
)
def test_a_bounce_names_the_message_the_recipient_and_the_server_words(name: str, status: str, words: str) -> None:
    report = read_delivery_report((CORPUS / "dsn" / name).read_bytes())
    assert report.original == "<q1.rotation@med.example.edu>"
    assert report.subject == "Question about the rotation"
    [failed] = report.failed
    assert failed.address == "arivera@hospital.example.org"
    assert failed.status == status
    assert failed.words.startswith(words), failed.words


def test_a_delay_warning_is_no_bounce() -> None:
    report = read_delivery_report((CORPUS / "dsn" / "postfix_delayed.eml").read_bytes())
    assert report.original == "<q1.rotation@med.example.edu>"
    assert report.failed == ()
    assert [r.action for r in report.recipients] == ["delayed"]


def test_a_report_without_structure_falls_back_on_x_failed_recipients_and_its_text() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\nTo: sam@med.example.edu\r\n"
        b"Subject: Mail delivery failed\r\nX-Failed-Recipients: arivera@hospital.example.org\r\n"
        b"In-Reply-To: <q2@med.example.edu>\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"  arivera@hospital.example.org\r\n    mailbox is full: retry timeout exceeded\r\n"
    )
    assert classify(raw).kind == "delivery-report"
    report = read_delivery_report(raw)
    assert report.original == "<q2@med.example.edu>"
    assert [r.address for r in report.failed] == ["arivera@hospital.example.org"]
    assert "mailbox is full" in report.failed[0].words


def test_broken_input_never_raises() -> None:
    for raw in (b"", b"\xff\xfe\x00garbage", b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\n"):
        classify(raw)
        read_delivery_report(raw)


def test_an_exim_bounce_without_structure_names_the_message_it_quotes() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\nTo: sam@med.example.edu\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n"
        b"X-Failed-Recipients: arivera@hospital.example.org\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent "
        b"error. The following address(es) failed:\r\n\r\n  arivera@hospital.example.org\r\n"
        b"    550 5.1.1 No such user\r\n\r\n------ This is a copy of the message, including all the headers. ------\r\n"
        b"Message-Id: <q3@med.example.edu>\r\nSubject: Question\r\n\r\nHello\r\n"
    )
    report = read_delivery_report(raw)
    assert report.original == "<q3@med.example.edu>"
    assert [r.address for r in report.failed] == ["arivera@hospital.example.org"]
    assert report.failed[0].words.endswith("550 5.1.1 No such user")


def _reply(extra: str, subject: str = "Re: Question about the rotation") -> bytes:
    return (
        f"From: arivera@hospital.example.org\r\nTo: sam@med.example.edu\r\nSubject: {subject}\r\n{extra}"
        "Message-ID: <r@hospital.example.org>\r\nIn-Reply-To: <q1.rotation@med.example.edu>\r\n\r\nYes.\r\n"
    ).encode()


def test_x_auto_response_suppress_is_the_senders_request_not_a_sign_of_a_machine() -> None:
    """Exchange stamps it on ordinary mail: it asks others not to auto-answer, it says nothing of who wrote."""
    assert classify(_reply("X-Auto-Response-Suppress: DR, OOF, AutoReply\r\n")).kind == "person"


@pytest.mark.parametrize(
    ("extra", "subject", "kind"),
    [
        # Outlook's "decline new invitations while away": a calendar reply, yet written by a machine.
        (
            "Auto-Submitted: auto-generated\r\nContent-Class: urn:content-classes:calendarmessage\r\n"
            "Content-Type: text/calendar; method=REPLY; charset=utf-8\r\n",
            "Declined: Meeting with Sam",
            "auto-reply",
        ),
        ("", "Out of Office AutoReply: Question about the rotation", "auto-reply"),  # Lotus Notes
        ("", "AutoReply: Question about the rotation", "auto-reply"),
        ("", "Auto-Reply: Question about the rotation", "auto-reply"),
        ("Content-Type: text/plain\r\n", "Read: Question about the rotation", "read-receipt"),  # plain-text receipt
        ("Content-Type: text/plain\r\n", "Not read: Question about the rotation", "read-receipt"),
        ("", "Return Receipt", "read-receipt"),  # Lotus Notes
        ("", "Return Receipt: Question about the rotation", "read-receipt"),
        # A person's own meeting answer, whatever Outlook asks of auto-responders, still counts.
        (
            "X-Auto-Response-Suppress: RN, NRN, OOF\r\nContent-Type: text/calendar; method=REPLY\r\n",
            "Accepted: Meeting with Sam",
            "person",
        ),
        ("Auto-Submitted: no (written by hand)\r\n", "Re: Question about the rotation", "person"),  # RFC 3834 comment
        ("Auto-Submitted: No\r\n", "Re: Question about the rotation", "person"),
        ("Auto-Submitted: auto-replied (vacation)\r\n", "Re: Question about the rotation", "auto-reply"),
        ("", "Re: Read: the chapter on sepsis", "person"),
        ("", "=?utf-8?q?Automatyczna_odpowied=C5=BA=3A_Q?=", "auto-reply"),  # Outlook in Polish
        ("", "Automatisk svar: Question", "auto-reply"),  # Danish, Norwegian
        ("", "Automatiskt svar: Question", "auto-reply"),  # Swedish
        ("", "Autosvar: Question", "auto-reply"),
        ("", "Automaattinen vastaus: Question", "auto-reply"),  # Finnish
        ("", "=?utf-8?q?Respuesta_automa=CC=81tica=3A_Q?=", "auto-reply"),  # the accent decomposed (NFD)
        ("X-Autogenerated: Reply\r\n", "Re: Question about the rotation", "auto-reply"),
        ("X-Precedence: auto_reply\r\n", "Re: Question about the rotation", "auto-reply"),
    ],
)
def test_machine_mail_in_its_less_common_spellings(extra: str, subject: str, kind: str) -> None:
    verdict = classify(_reply(extra, subject))
    assert verdict.kind == kind, verdict.sign


def test_a_qmail_bounce_in_plain_text_names_the_recipient_and_the_server_words() -> None:
    """qmail writes no delivery-status part and no X-Failed-Recipients: only ``<address>:`` lines and its words."""
    raw = (
        b"Return-Path: <>\r\nFrom: MAILER-DAEMON@mail.med.example.edu\r\nTo: sam@med.example.edu\r\n"
        b"Subject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mail.med.example.edu.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<arivera@hospital.example.org>:\r\n192.0.2.25 does not like recipient.\r\n"
        b"Remote host said: 550 5.1.1 No such user here\r\nGiving up on 192.0.2.25.\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"From: Sam Patel <sam@med.example.edu>\r\nTo: arivera@hospital.example.org\r\n"
        b"Message-ID: <q1.rotation@med.example.edu>\r\n\r\nHello, <someone@else.example.org>:\r\n"
    )
    assert classify(raw).kind == "delivery-report"
    report = read_delivery_report(raw)
    assert report.original == "<q1.rotation@med.example.edu>"
    [failed] = report.failed
    assert failed.address == "arivera@hospital.example.org"
    assert "550 5.1.1 No such user here" in failed.words


def test_a_bounce_through_her_forwarding_address_names_her_address_too() -> None:
    """RFC 3464: Final-Recipient is where her address forwarded to, Original-Recipient her address."""
    raw = (
        (CORPUS / "dsn" / "postfix_user_unknown.eml")
        .read_bytes()
        .replace(
            b"Final-Recipient: rfc822; arivera@hospital.example.org",
            b"Final-Recipient: rfc822; ana.rivera@old-clinic.example.net",
        )
    )
    [failed] = read_delivery_report(raw).failed
    assert failed.address == "ana.rivera@old-clinic.example.net"
    assert failed.original == "arivera@hospital.example.org"
    assert failed.names(("arivera@hospital.example.org",))
    assert not failed.names(("someone@else.example.org",))


@pytest.mark.parametrize(
    ("extra", "subject", "kind"),
    [
        # Behind the tag a university's gateway puts on mail from outside: still the machine's subject
        (
            "X-MS-Exchange-Inbox-Rules-Loop: arivera@hospital.example.org\r\n",
            "[EXTERNAL] Automatic reply: Q",
            "auto-reply",
        ),
        ("", "EXTERNAL: Automatic reply: Q", "auto-reply"),
        ("", "*EXTERNAL* Out of Office: Q", "auto-reply"),
        ("", "[Ext] Read: Q", "read-receipt"),
        ("", "Out of Office Reply: Q", "auto-reply"),
        ("", "Return Receipt (displayed) - Q", "read-receipt"),  # Thunderbird's receipt sent as plain mail
        ("", "=?utf-8?b?6Ieq5Yqo5Zue5aSNOiBRdWVzdGlvbg==?=", "auto-reply"),  # Chinese
        ("", "=?utf-8?b?6Ieq5YuV5b+c562UOiBRdWVzdGlvbg==?=", "auto-reply"),  # Japanese
        ("X-Autoresponse: yes\r\n", "Re: Q", "auto-reply"),
        ("X-Auto-Reply: yes\r\n", "Re: Q", "auto-reply"),
        ("Precedence: auto-reply\r\n", "Re: Q", "auto-reply"),
        ("Return-Path: < >\r\n", "Re: Q", "auto-reply"),
        ("X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n", "RE: Q", "auto-reply"),
        # A second hostile round: more languages, receipts and gateway tags
        ("", "=?utf-8?b?0JDQstGC0L7QvNCw0YLQuNGH0LXRgdC60LjQuSDQvtGC0LLQtdGCOiBR?=", "auto-reply"),  # Russian
        ("", "Automatická odpověď: Q", "auto-reply"),  # Czech
        ("", "Letto: Q", "read-receipt"),  # Italian
        ("", "Gelezen: Q", "read-receipt"),  # Dutch
        ("", "Read receipt: Q", "read-receipt"),
        ("", "(EXTERNAL) Automatic reply: Q", "auto-reply"),
        ("", "EXT - Automatic reply: Q", "auto-reply"),
        ("", "[EXT]: Read: Q", "read-receipt"),
        ("", "***SPAM*** Automatic reply: Q", "auto-reply"),
        ("", "CAUTION: External email. Automatic reply: Q", "auto-reply"),
        ("X-Autoreply: no\r\n", "Re: Q", "person"),  # a header that says it is not
        ('Auto-Submitted: "no"\r\n', "Re: Q", "person"),
        # A person's reply is still one: a tag, a subject that only starts alike
        ("", "[EXTERNAL] Re: Read: the chapter on sepsis", "person"),
        ("", "[EXTERNAL] Re: Out of office hours question", "person"),
        ("", "AW: Frage", "person"),
        ("", "[EXTERNAL] Re: Question about the rotation", "person"),
        ("Precedence: list\r\n", "Re: Q", "person"),
    ],
)
def test_machine_mail_behind_a_gateways_tag_and_in_more_spellings(extra: str, subject: str, kind: str) -> None:
    verdict = classify(_reply(extra, subject))
    assert verdict.kind == kind, verdict.sign


@pytest.mark.parametrize(
    "subject", ["Respuesta automática: Q", "Réponse automatique : Q", "Automatische Antwort: Q", "自動返信: Q"]
)
def test_an_auto_reply_subject_in_raw_utf8_is_known(subject: str) -> None:
    """RFC 6532: a subject in UTF-8 without RFC 2047 words, as her server may pass it on."""
    assert classify(_reply("", subject)).kind == "auto-reply"


def test_a_sender_name_holding_a_comma_in_an_encoded_word_is_not_an_address_of_its_own() -> None:
    """The From field is split as written, then its name decoded: decoded first, "Mail Delivery, System" made
    "Mail Delivery" the first address, and a plain-text bounce from the mailer daemon counted as her answer."""
    raw = (
        b"From: =?UTF-8?Q?Mail_Delivery=2C_System?= <MAILER-DAEMON@hospital.example.org>\r\n"
        b"To: sam@med.example.edu\r\nSubject: Mail failure\r\n\r\nA message could not be delivered.\r\n"
    )
    assert classify(raw).kind == "delivery-report"
