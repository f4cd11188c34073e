"""The fast readings of plain headers say exactly what the stdlib says, or decline: address lists
(addresses.plain_addresses, against email.utils) and header blocks (header_fields.plain_fields, against the compat32
parser). Hostile and unusual headers are always read by the stdlib."""

from __future__ import annotations

from email import policy as email_policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rules.addresses import plain_addresses
from agent.rules.envelope import parse_envelope
from agent.rules.header_fields import plain_fields


def _stdlib(value: str) -> list[str]:
    return [address for _display, address in getaddresses([value])]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ana@x.org", ["ana@x.org"]),
        ("Ana Rivera <ana@x.org>", ["ana@x.org"]),
        ("<ana@x.org>", ["ana@x.org"]),
        ("Dr. Ana Rivera <ana@x.org>, kim@y.org,Bo<bo@z.org>", ["ana@x.org", "kim@y.org", "bo@z.org"]),
        ("=?utf-8?q?Ana_Rivera?= <ana@x.org>", ["ana@x.org"]),
        ("o'neil+tag@hospital.example.org", ["o'neil+tag@hospital.example.org"]),
    ],
)
def test_plain_lists_are_read_fast_and_as_email_utils_reads_them(value: str, expected: list[str]) -> None:
    assert plain_addresses(value) == expected == _stdlib(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ana@x.org,",
        ",ana@x.org",
        '"Rivera, Ana" <ana@x.org>',  # a comma inside quotes
        "ana@x.org <mallory@y.org>",  # two addresses in one item
        "Ana (the mentor) <ana@x.org>",  # a comment
        "ana@x.org (Ana)",
        "friends: ana@x.org, kim@y.org;",  # a group
        "<@route.org:ana@x.org>",  # a source route
        "ana..b@x.org",
        ".ana@x.org",
        "ana@x.org.",
        "ana@[127.0.0.1]",
        "Ana <ana@x.org",
        "Ana ana@x.org>",
        "ana@x.org\r\n kim@y.org",  # folded
        "ana@x.org,\r\n kim@y.org",
        "ana@exämple.org",  # beyond ASCII
        "Ana <ana@x.org> <kim@y.org>",
        "ana@@x.org",
        "a@b@c.org",
        "<ana@x.org> Ana",
        "ana@x.org;kim@y.org",
        "\\ana@x.org",
        "Ana\x00 <ana@x.org>",
    ],
)
def test_anything_else_is_left_to_email_utils(value: str) -> None:
    assert plain_addresses(value) is None


_ATEXT = "abzAZ09!#$%&'*+/=?^_`{|}~-"
_NOISE = _ATEXT + ' .@<>,;:"()[]\\\t\r\n\x00é'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_NOISE, max_size=40))
def test_whatever_is_read_fast_is_what_email_utils_reads(value: str) -> None:
    fast = plain_addresses(value)
    if fast is not None:
        assert fast == _stdlib(value)


_ATOM = st.text(alphabet=_ATEXT, min_size=1, max_size=6)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_SPEC = st.tuples(_DOT_ATOM, _DOT_ATOM).map("@".join)
_NAME = st.lists(st.text(alphabet=_ATEXT + ".", min_size=1, max_size=6), max_size=3).map(" ".join)
_ITEM = st.one_of(_SPEC, st.tuples(_NAME, _SPEC, st.sampled_from(["", " "])).map(lambda t: f"{t[0]}{t[2]}<{t[1]}>"))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ITEM, min_size=1, max_size=4), st.sampled_from([",", ", ", " , "]))
def test_plain_lists_read_fast_agree_with_email_utils(items: list[str], comma: str) -> None:
    value = comma.join(items)
    fast = plain_addresses(value)
    assert fast == _stdlib(value)


def test_an_envelope_of_hostile_recipients_reads_as_before() -> None:
    """A hostile To is read by email.utils, as before; a plain one the fast way, normalised as ever."""
    envelope = parse_envelope(b"From: s@med.example.edu\r\nTo: ana@x.org <mallory@y.org>, (x)\r\nSubject: s\r\n\r\n")
    assert envelope.to == tuple(a for a in _stdlib("ana@x.org <mallory@y.org>, (x)") if a)
    plain = parse_envelope(b"From: s@med.example.edu\r\nTo: Ana <Ana@X.org>, kim@y.org\r\nSubject: s\r\n\r\n")
    assert plain.to == ("ana@x.org", "kim@y.org")


def _stdlib_fields(block: bytes) -> tuple[list[tuple[str, str]], str]:
    message = BytesHeaderParser(policy=email_policy.compat32).parsebytes(block)
    return [(name, str(value)) for name, value in message.raw_items()], message.get_content_type()


_LINE_PIECES = st.sampled_from(
    [
        "To: a@b.org",
        "Subject:",
        "Content-Type: multipart/signed; protocol=x",
        "content-type:TEXT/Plain",
        "Content-Type: nonsense",
        "Content-Type: a/b/c",
        " folded",
        "\tmore",
        "From x@y",
        ": no name",
        "No Colon",
        "X-Ü: 8bit name",
        "Subject: caf\udcc3\udca9",
        "Content-Type: text/\udcc3",
        "",
        "X-A:b:c",
    ]
)
_ENDS = st.sampled_from(["\r\n", "\n", "\r", "\r\r\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_LINE_PIECES, _ENDS), min_size=1, max_size=8), st.booleans())
def test_plain_header_blocks_are_read_as_the_stdlib_reads_them(lines: list[tuple[str, str]], last_end: bool) -> None:
    text = "".join(line + end for line, end in lines)
    if not last_end:
        text = text[: -len(lines[-1][1])]
    block = text.encode("utf-8", "surrogateescape")
    fast = plain_fields(block)
    if fast is not None:
        assert fast == _stdlib_fields(block)


def test_ordinary_header_blocks_take_the_fast_way() -> None:
    block = b"From: Sam <s@x.org>\r\nTo: a@b.org,\r\n c@d.org\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8"
    assert plain_fields(block) == _stdlib_fields(block)
    assert plain_fields(b"From s@x.org  Mon Jan 1\r\nTo: a@b.org") is None  # an mbox From line
    assert plain_fields(b" To: a@b.org") is None
    assert plain_fields(b"To: a@b.org\rCc: c@d.org") is None
