"""Addresses beyond ASCII in what the agent sends and compares (issue 23, the hostile tester's findings): one
domain however it is spelled, and never another one (IDNA2008: ``straße`` is not ``strasse``); a digest names
every recipient and keeps Reply-To and Disposition-Notification-To, in UTF-8 headers when they need them."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

from agent.rules.addresses import normal_address
from agent.rules.digest import Original, compose_parts, envelope_recipients
from agent.rules.envelope import parse_envelope

ARGS: dict[str, Any] = {
    "student_name": "Sam Patel",
    "student_address": "sam@med.example.edu",
    "mentor_name": "Dr. Ana Rivera",
    "now": datetime(2026, 12, 5, 9, 0, tzinfo=timezone(timedelta(hours=-5))),
    "domain": "med.example.edu",
}
HEAD = "From: Sam Patel <sam@med.example.edu>\r\nTo: Dr. Ana Rivera <arivera@hospital.example.org>\r\n"


def message(subject: str, extra: str = "", head: str = HEAD) -> bytes:
    return f"{head}Subject: {subject}\r\nMessage-ID: <{subject}@x>\r\n{extra}\r\nbody {subject}\r\n".encode()


def digest(*raws: bytes) -> EmailMessage:
    [part] = compose_parts([Original(f"k{i}", raw) for i, raw in enumerate(raws)], **ARGS)
    assert part.message is not None
    wire = part.message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_domain_is_never_mapped_to_another_domain() -> None:
    """IDNA2008 (RFC 5891, UTS 46 non-transitional): straße is xn--strae-oqa, not strasse (IDNA 2003's mapping)."""
    assert normal_address("kollege@straße.example.org") == "kollege@xn--strae-oqa.example.org"
    assert normal_address("Kollege@STRASSE.example.org") == "kollege@strasse.example.org"
    assert normal_address("a@xn--strae-oqa.example.org") == normal_address("A@Straße.Example.org")
    assert normal_address("a@σς.example") != normal_address("a@σσ.example")
    assert normal_address("a@exämple.org") == normal_address("a@EXÄMPLE.ORG") == "a@xn--exmple-cua.org"
    cc = HEAD + "Cc: Kollege <kollege@straße.example.org>\r\n"
    raw = message("a", head=cc)
    assert parse_envelope(raw).cc == ("kollege@xn--strae-oqa.example.org",)
    assert envelope_recipients([Original("a", raw)])[-1] == "kollege@xn--strae-oqa.example.org"
    assert "xn--strae-oqa.example.org" in str(digest(raw, message("b", head=cc))["Cc"])


UTF8_CC = HEAD + "Cc: Jürgen Müller <müller@exämple.org>\r\n"
UTF8_TO = "From: Sam Patel <sam@med.example.edu>\r\nTo: Jürgen Müller <müller@exämple.org>\r\n"


def shapes(*raws: bytes) -> list[tuple[tuple[str, ...], bool, str]]:
    found = compose_parts([Original(f"k{i}", raw) for i, raw in enumerate(raws)], **ARGS)
    return [(part.keys, part.alone, part.why) for part in found]


def test_a_recipient_a_digest_cannot_name_goes_alone_never_unnamed() -> None:
    """A digest is written in ASCII headers: a message to an address beyond ASCII goes alone, as she wrote it
    (with SMTPUTF8), never in a digest whose To or Cc leaves that recipient out while the envelope sends to her."""
    for head in (UTF8_CC, UTF8_TO):
        a, b = message("a", head=head), message("b", head=head)
        assert parse_envelope(a).wide  # intake marks it standalone: the engine paces it as its own e-mail
        found = shapes(a, b)
        assert [(keys, alone) for keys, alone, _ in found] == [(("k0",), True), (("k1",), True)], found
        assert all("beyond ASCII" in why for _, _, why in found)
    assert not parse_envelope(message("a", head=HEAD + "Cc: kollege@straße.example.org\r\n")).wide


def test_a_reply_to_or_receipt_address_beyond_ascii_is_never_replaced_or_dropped() -> None:
    for extra in ("Reply-To: Sam <sám@exämple.org>\r\n", "Disposition-Notification-To: sám@exämple.org\r\n"):
        a, b = message("a", extra), message("b", extra)
        assert parse_envelope(a).wide
        assert [alone for _, alone, _ in shapes(a, b, message("c"))] == [True, True, False]
    kept = digest(*(message(s, "Reply-To: Sam <sam@exämple.org>\r\n") for s in "ab"))
    assert str(kept["Reply-To"]) == "Sam <sam@xn--exmple-cua.org>"


def test_a_name_holding_a_comma_in_an_encoded_word_is_one_recipient() -> None:
    """ "Rivera, Ána" as Thunderbird writes it (the comma inside an encoded word): the name was decoded before the
    field was split, so the digest went to a second recipient, RCPT TO:<rivera> (a submission server may add its
    own domain to it: a stranger at her university)."""
    encoded = (
        "From: Sam Patel <sam@med.example.edu>\r\nTo: =?UTF-8?Q?Rivera=2C_=C3=81na?= <arivera@hospital.example.org>\r\n"
    )
    quoted = 'From: Sam Patel <sam@med.example.edu>\r\nTo: "Rivera, Ana" <arivera@hospital.example.org>\r\n'
    raws = [message("a", head=encoded), message("b", head=quoted)]
    assert parse_envelope(raws[0]).to == ("arivera@hospital.example.org",)
    assert envelope_recipients([Original(f"k{i}", raw) for i, raw in enumerate(raws)]) == [
        "arivera@hospital.example.org"
    ]
    sent = digest(*raws)
    assert [address.addr_spec for address in sent["To"].addresses] == ["arivera@hospital.example.org"]
    assert sent["To"].addresses[0].display_name in ("Rivera, Ána", "Rivera, Ana")
