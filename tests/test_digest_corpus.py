"""A digest never changes what the student wrote: real-shaped messages from tests/corpus/digest/ (signed and
encrypted, forwarded messages and invitations, read receipts, Reply-To, format=flowed quotes), composed and read
back as a mail client would. The same corpus goes through the real daemon in tests/test_digest_corpus_e2e.py."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from agent.rules.digest import Original, compatibility_key, compose, compose_parts, envelope_recipients
from agent.rules.envelope import parse_envelope
from agent.rules.mimetext import unflow

ARGS: dict[str, Any] = {
    "student_name": "Sam Patel",
    "student_address": "sam@med.example.edu",
    "mentor_name": "Dr. Ana Rivera",
    "now": datetime(2026, 12, 5, 9, 0, tzinfo=timezone(timedelta(hours=-5))),
    "domain": "med.example.edu",
}
CORPUS = Path(__file__).resolve().parent / "corpus" / "digest"
SEALED = ("pgp-signed.eml", "pgp-encrypted.eml", "smime-signed.eml", "smime-pkcs7.eml")
PLAIN = (
    b"From: Sam Patel <sam@med.example.edu>\r\nTo: Dr. Ana Rivera <arivera@hospital.example.org>\r\n"
    b"Subject: A plain question\r\nMessage-ID: <plain.1@med.example.edu>\r\n\r\nWhen is clinic on Friday?\r\n"
)


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def parts(*names: str, extra: tuple[bytes, ...] = (PLAIN,)) -> list[tuple[tuple[str, ...], EmailMessage | None]]:
    originals = [Original(name, corpus(name)) for name in names] + [Original(f"x{i}", r) for i, r in enumerate(extra)]
    composed = compose_parts(originals, **ARGS)
    return [(p.keys, _reparse(p.message) if p.message else None) for p in composed]


def _reparse(msg: EmailMessage) -> EmailMessage:
    data = msg.as_bytes(policy=email.policy.SMTP)
    assert data.isascii()
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return parsed


def only_digest(*names: str) -> EmailMessage:
    found = parts(*names)
    assert len(found) == 1, found
    digest = found[0][1]
    assert digest is not None
    return digest


@pytest.mark.parametrize("name", SEALED)
def test_a_signed_or_encrypted_message_never_shares_a_digest(name: str) -> None:
    envelope = parse_envelope(corpus(name))
    assert envelope.sealed and not envelope.problems  # intake marks it standalone: the engine never batches it
    found = parts(name, extra=(PLAIN, PLAIN.replace(b"plain.1", b"plain.2")))
    alone = [keys for keys, message in found if message is None]
    assert alone == [(name,)]  # and should it ever reach the composer, it still goes as written
    assert [keys for keys, message in found if message is not None] == [("x0", "x1")]


def test_a_signed_part_deeper_in_a_message_keeps_it_out_of_a_digest() -> None:
    signed = corpus("smime-signed.eml")
    head, _, body = signed.partition(b"\r\n\r\n")
    signed_part = b"Content-Type: " + head.split(b"Content-Type: ", 1)[1] + b"\r\n\r\n" + body
    wrapper = (
        b"From: Sam Patel <sam@med.example.edu>\r\nTo: Dr. Ana Rivera <arivera@hospital.example.org>\r\n"
        b'Subject: Wrapped\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="w"\r\n\r\n'
        b"--w\r\n" + signed_part + b"\r\n--w--\r\n"
    )
    found = parts(extra=(PLAIN, wrapper))
    assert [keys for keys, message in found if message is None] == [("x1",)]


def test_a_forwarded_message_is_carried_over_whole_and_still_readable() -> None:
    digest = only_digest("forwarded-message.eml")
    forwarded = [p for p in digest.walk() if p.get_content_type() == "message/rfc822"]
    assert len(forwarded) == 1 and forwarded[0].get_filename() == "Lab results.eml"
    inner = forwarded[0].get_content()
    assert isinstance(inner, EmailMessage)
    assert inner["Subject"] == "Lab results" and inner["Message-ID"] == "<lab.1234@hospital.example.org>"
    pdf = [p for p in inner.iter_attachments() if p.get_filename() == "panel.pdf"]
    assert len(pdf) == 1 and pdf[0].get_content().startswith(b"%PDF-1.4")
    # Its own files stay inside it (not loose in the digest), and its text is shown in the digest.
    assert [p.get_filename() for p in digest.iter_attachments()] == ["Lab results.eml"]
    text = digest.get_body(("plain",))
    assert text is not None and "Potassium 4.1" in text.get_content()


MESSAGE_PARTS = (
    b"From: Sam Patel <sam@med.example.edu>\r\nTo: Dr. Ana Rivera <arivera@hospital.example.org>\r\n"
    b"Subject: FYI, the bounce\r\nMessage-ID: <bounce.fwd@med.example.edu>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="OO"\r\n\r\n--OO\r\nContent-Type: text/plain\r\n\r\nFYI\r\n'
    b"--OO\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
    b"Final-Recipient: rfc822; lab@hospital.example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b'--OO\r\nContent-Type: message/global\r\nContent-Disposition: attachment; filename="orig.u8msg"\r\n\r\n'
    b"From: lab@hospital.example.org\r\nSubject: the original\r\n\r\nbody of the original\r\n--OO--\r\n"
)


def test_a_forwarded_message_global_or_delivery_status_is_carried_over() -> None:
    """Every message/* part is carried, not only message/rfc822: a bounce's delivery status, an RFC 6532 message."""
    [(keys, digest)] = parts(extra=(MESSAGE_PARTS, PLAIN))
    assert keys == ("x0", "x1") and digest is not None
    found = {p.get_content_type(): p for p in digest.walk()}
    status = found["message/delivery-status"].as_string()
    assert "Final-Recipient: rfc822; lab@hospital.example.org" in status and "Status: 5.1.1" in status
    carried = found["message/global"]
    assert carried.get_filename() == "orig.u8msg"
    assert b"Subject: the original\r\n\r\nbody of the original" in carried.as_bytes(policy=email.policy.SMTP)


def test_a_forwarded_invitation_keeps_its_method() -> None:
    digest = only_digest("forwarded-invitation.eml")
    calendars = [p for p in digest.walk() if p.get_content_type() == "text/calendar"]
    assert len(calendars) == 1
    assert calendars[0].get_param("method") == "REQUEST"
    assert "METHOD:REQUEST" in calendars[0].get_content()


def test_the_students_reply_to_and_read_receipt_request_are_kept() -> None:
    digest = only_digest()  # the plain message alone: From is where answers go, as before
    assert str(digest["Reply-To"]) == "Sam Patel <sam@med.example.edu>"
    assert digest["Disposition-Notification-To"] is None
    keyed = [Original(n, corpus(n)) for n in ("reply-to.eml", "read-receipt.eml")]
    reply_to = parts(
        "reply-to.eml", extra=(PLAIN.replace(b"Subject:", b"Reply-To: sam.patel@research.example.edu\r\nSubject:"),)
    )
    assert len(reply_to) == 1 and reply_to[0][1] is not None
    assert reply_to[0][1]["Reply-To"].addresses[0].addr_spec == "sam.patel@research.example.edu"
    receipt = parts(
        "read-receipt.eml",
        extra=(PLAIN.replace(b"Subject:", b"Disposition-Notification-To: sam@med.example.edu\r\nSubject:"),),
    )
    assert len(receipt) == 1 and receipt[0][1] is not None
    assert parseaddr(str(receipt[0][1]["Disposition-Notification-To"]))[1] == "sam@med.example.edu"
    assert len({compatibility_key(o.raw) for o in keyed}) == 2


def test_a_different_reply_to_or_receipt_request_means_another_digest() -> None:
    plain = parse_envelope(PLAIN)
    for name in ("reply-to.eml", "read-receipt.eml"):
        assert parse_envelope(corpus(name)).group_key != plain.group_key, name
        assert compatibility_key(corpus(name)) != compatibility_key(PLAIN), name
        with pytest.raises(ValueError, match="cannot share one digest"):
            compose([Original("a", corpus(name)), Original("b", PLAIN)], **ARGS)
        found = parts(name)  # should the engine ever group them, the one that asks otherwise goes alone
        assert [(keys, message is None) for keys, message in found] == [((name,), False), (("x0",), True)]
    assert parse_envelope(corpus("flowed-quotes.eml")).group_key == plain.group_key  # nothing to keep apart


def test_format_flowed_joins_only_lines_of_one_quote_depth() -> None:
    text = only_digest("flowed-quotes.eml").get_body(("plain",))
    assert text is not None
    lines = text.get_content().replace("\r\n", "\n").split("\n")
    assert ">> Pick the elective that scares you a little." in lines
    assert "> And I said it would be the ICU, which still holds." in lines
    assert "Thank you again; the ICU it is, and I have written to the coordinator." in lines
    assert not any("> >" in line or line.endswith(">") for line in lines)


def test_unflow_keeps_depths_apart_and_the_signature_separator() -> None:
    flowed = "> a \n> b\n>> c \n> d\ne \nf\n-- \nSam"
    assert unflow(flowed, delsp=False) == "> a b\n>> c\n> d\ne f\n-- \nSam"
    assert unflow("> x\n>\n", delsp=False) == "> x\n>\n"
    assert unflow(" >stuffed \nline", delsp=False) == ">stuffed line"
    assert unflow("word \n-- \nSam", delsp=False) == "word\n-- \nSam"  # a flowed line never joins the separator
    assert unflow("> word \n> -- \n> Sam", delsp=True) == "> word\n> -- \n> Sam"


def test_one_mentor_however_her_domain_is_spelled() -> None:
    unicode = b"To: M\xc3\xbcller <mueller@EX\xc3\x84MPLE.org>\r\nSubject: a\r\n\r\n"
    puny = b"To: mueller@xn--exmple-cua.ORG\r\nSubject: b\r\n\r\n"
    assert parse_envelope(unicode).to == parse_envelope(puny).to == ("mueller@xn--exmple-cua.org",)
    assert parse_envelope(unicode).group_key == parse_envelope(puny).group_key
    assert compatibility_key(unicode) == compatibility_key(puny)
    assert envelope_recipients([Original("a", unicode), Original("b", puny)]) == ["mueller@xn--exmple-cua.org"]


def test_a_utf8_address_header_is_read_as_utf8() -> None:
    envelope = parse_envelope(corpus("utf8-address.eml"))
    assert envelope.to == ("müller@xn--exmple-cua.org",) and not envelope.problems


def test_a_reply_to_that_is_her_from_address_again_is_as_good_as_none() -> None:
    same = PLAIN.replace(b"Subject:", b"Reply-To: Sam <SAM@med.example.edu>\r\nSubject:")
    assert parse_envelope(same).group_key == parse_envelope(PLAIN).group_key
    assert compatibility_key(same) == compatibility_key(PLAIN)
    [(keys, digest)] = parts(extra=(same, PLAIN.replace(b"plain.1", b"plain.2")))
    assert keys == ("x0", "x1") and digest is not None
