"""Header lines the agent would not read as mail programs do (the tester's parse findings 1 and 2): a line of the
header block that is not a field hides from the stdlib's parser every field after it (a second mentor in To, a Cc),
while Dovecot and mail programs read on; an address field whose bytes are not UTF-8 would be read as another
address (Dovecot stores a NUL as 0x80, which Windows-1252 makes "€"). Either is a problem: the message is held in
Needs attention, never sent misread."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import policy as email_policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rules.envelope import parse_envelope, split_head
from agent.rules.header_fields import plain_fields
from tests.agent_process import MENTOR, OUTBOX, STUDENT, policy_text
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass

KIM = "kim@clinic.example.org"


def _message(fields: bytes, subject: str = "hidden") -> bytes:
    head = f"From: Sam Patel <{STUDENT}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@med.example.edu>\r\n"
    return head.encode() + fields + b"\r\n\r\nbody\r\n"


HIDING = {
    "a line without a colon": _message(f"Cc: {MENTOR}\r\nGarbage\r\nTo: {KIM}".encode()),
    "a line without a colon, a friend hidden": _message(
        f"To: {MENTOR}\r\nX garbage\r\nCc: friend@example.org".encode()
    ),
    "an 8-bit field name": _message(f"To: {MENTOR}\r\nX-ü: y\r\nCc: {KIM}".encode()),
    "a NUL in a field name": _message(f"To: {MENTOR}\r\nX-Ok: y\r\n\tfolded\r\nCc\x00: friend@example.org".encode()),
    "a space before the colon": _message(f"To: {MENTOR}\r\nX-Note : y\r\nCc: {KIM}".encode()),
    "a From line in the middle": _message(f"To: {MENTOR}\r\nFrom : {KIM}".encode()),
    "a From field with a space first": f"From : {KIM}\r\n".encode() + _message(f"To: {MENTOR}".encode()),
    "a first line that continues nothing": f" Cc: {KIM}\r\n".encode() + _message(f"To: {MENTOR}".encode()),
    "a lone CR ending the block early": _message(f"To: {MENTOR}\r\r\nCc: {KIM}".encode()),
}


@pytest.mark.parametrize("raw", list(HIDING.values()), ids=list(HIDING))
def test_a_header_line_that_is_not_a_field_is_a_problem(raw: bytes) -> None:
    envelope = parse_envelope(raw)
    assert any("not a header field" in p for p in envelope.problems), (envelope.to, envelope.cc, envelope.problems)


def test_the_problem_names_the_line() -> None:
    (problem,) = parse_envelope(HIDING["a line without a colon"]).problems
    assert "'Garbage'" in problem and "fields after it would not be read" in problem
    (problem,) = parse_envelope(HIDING["an 8-bit field name"]).problems
    assert "'X-ü: y'" in problem


LEGITIMATE = {
    "an mbox From line first": b"From sam@med.example.edu  Sun Dec  6 09:00:00 2026\r\n"
    + _message(b"To: " + MENTOR.encode()),
    "folded lines": _message(f"To: Ana Rivera\r\n <{MENTOR}>,\r\n\t{KIM}\r\nX-Long: a\r\n\tb".encode()),
    "empty values": _message(f"To: {MENTOR}\r\nX-Empty:\r\nKeywords: \r\nComments:".encode()),
    "obsolete syntax": _message(f"To: Dr. Ana Rivera <{MENTOR}>\r\nCc: <@route.example.org:{KIM}>\r\nX-A:b:c".encode()),
    "LF line ends": _message(f"To: {MENTOR}\nCc: {KIM}".encode()).replace(b"\r\n", b"\n"),
    "8-bit UTF-8 in values": _message(f"To: Ána <{MENTOR}>\r\nSubject: café".encode()),
    "a Windows-1252 subject": _message(f"To: {MENTOR}".encode()).replace(b"Subject: hidden", b"Subject: caf\xe9"),
}


@pytest.mark.parametrize("raw", list(LEGITIMATE.values()), ids=list(LEGITIMATE))
def test_ordinary_blocks_have_no_problem(raw: bytes) -> None:
    envelope = parse_envelope(raw)
    assert envelope.problems == ()
    assert MENTOR in envelope.recipients


@pytest.mark.parametrize(
    "byte",
    [b"\x00", b"\x80", b"\xff", b"\xe9", b"\xc2\x80"],
    ids=["NUL", "0x80 (Dovecot's NUL)", "0xFF", "Latin-1", "U+0080 in UTF-8"],
)
@pytest.mark.parametrize("name", [b"To", b"Cc", b"Bcc"])
def test_an_address_field_that_is_not_utf8_is_a_problem_not_another_address(byte: bytes, name: bytes) -> None:
    envelope = parse_envelope(_message(name + b": " + MENTOR.encode() + byte + b", evil@example.org"))
    assert envelope.problems, f"read as {envelope.recipients}"
    assert all(a.isascii() and a.isprintable() for a in envelope.recipients), envelope.recipients


def test_a_utf8_address_field_is_read() -> None:
    envelope = parse_envelope(_message("To: Ána <ana@exämple.org>".encode()))
    assert envelope.problems == () and envelope.to == ("ana@xn--exmple-cua.org",)


def test_a_display_name_not_in_utf8_is_only_shown() -> None:
    """Names may keep the Windows-1252 reading (display only): the addresses beside them are what they are."""
    envelope = parse_envelope(_message(b"To: Andr\xe9 Rivera <" + MENTOR.encode() + b">, \x80 <" + KIM.encode() + b">"))
    assert envelope.problems == () and envelope.to == (MENTOR, KIM)


# -- the property: the agent reads every field a line reader (Dovecot, mail programs) reads, or it has a problem --

_LINES = st.sampled_from(
    [
        f"To: {MENTOR}",
        f"Cc: {KIM}",
        "Bcc: friend@example.org",
        "Subject:",
        "X-A:b:c",
        " folded",
        "\tmore",
        "From sam@x.org Sun Dec  6",
        "From : x@y.org",
        ": no name",
        "No Colon",
        "X-\udcc3\udcbc: 8bit name",
        "Cc\x00: nul@example.org",
        "X-Space : y",
        "Subject: caf\udcc3\udca9",
    ]
)


def _line_reader(block: bytes) -> list[str]:
    """The field names as a line reader finds them: every line with a colon is a field (an mbox From line first
    is not a line of the header), a line beginning with a space or tab continues the one before."""
    lines = block.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[0].startswith(b"From ") and not re.match(rb"From[ \t]*:", lines[0]):
        lines = lines[1:]
    names = []
    for number, line in enumerate(lines):
        if line[:1] in (b" ", b"\t") and number:
            continue
        names.append(line.partition(b":")[0].decode("utf-8", "surrogateescape") if b":" in line else "?")
    return names


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_LINES, st.sampled_from(["\r\n", "\n"])), min_size=1, max_size=8))
def test_fields_a_line_reader_finds_are_read_or_the_envelope_has_a_problem(lines: list[tuple[str, str]]) -> None:
    raw = "".join(line + end for line, end in lines).encode("utf-8", "surrogateescape") + b"\r\nbody\r\n"
    block = split_head(raw)[0]
    stdlib = BytesHeaderParser(policy=email_policy.compat32).parsebytes(block)
    read = [name for name, _value in stdlib.raw_items()]
    fast = plain_fields(block)
    envelope = parse_envelope(raw)
    if fast is not None:
        assert [name for name, _value in fast[0]] == read
    if read != _line_reader(block):
        problems = [p for p in envelope.problems if "not a header field" in p]
        assert problems, f"{block!r}: read {read}, a mail program reads {_line_reader(block)}"


# -- the whole way: Dovecot's view, and a pass that holds the message ------------------------------------------


def test_dovecot_reads_on_where_the_stdlib_stops_and_stores_nul_as_0x80(dovecot: Dovecot) -> None:
    hiding = HIDING["a line without a colon"]
    nul = _message(f"To: {MENTOR}\x00, evil@example.org".encode(), "nul")
    user = dovecot.new_user()
    with dovecot.client(user) as client:
        client.create_folder("T")
        for raw in (hiding, nul):
            client.append("T", raw)
        client.select_folder("T")
        fetched = client.fetch(client.search("ALL"), ["ENVELOPE", "BODY.PEEK[]"])
    (first, second) = (fetched[uid] for uid in sorted(fetched))
    to = [f"{a.mailbox.decode()}@{a.host.decode()}" for a in first[b"ENVELOPE"].to]
    assert to == [KIM], "what a mail program shows as To"
    assert any("not a header field" in p for p in parse_envelope(first[b"BODY[]"]).problems)
    assert MENTOR.encode() + b"\x80," in second[b"BODY[]"], "Dovecot stores a NUL as 0x80"
    assert parse_envelope(second[b"BODY[]"]).problems


@pytest.fixture
def open_pass(tmp_path: Path) -> Iterator[Pass]:
    smtp = SmtpServer(smtputf8=True)  # it would take "arivera@hospital.example.org€" (RFC 6531)
    smtp.start()
    made = Pass(tmp_path, smtp, policy_text())
    try:
        yield made
    finally:
        made.world.ledger.close()
        smtp.stop()


def test_a_message_with_a_hidden_field_or_a_mangled_address_is_held_not_sent(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _message(f"Cc: {MENTOR}\r\nGarbage\r\nTo: {KIM}".encode(), "hides kim"))
    open_pass.server.put(OUTBOX, _message(b"To: " + MENTOR.encode() + b"\x80, evil@example.org", "mangled"))
    open_pass.run()
    open_pass.run()
    assert open_pass.smtp.messages == [], f"sent to {[r.rcpt_tos for r in open_pass.smtp.messages]}"
    assert sorted(open_pass.subjects("Needs attention")) == ["hides kim", "mangled"]
