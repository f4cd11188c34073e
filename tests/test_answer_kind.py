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
