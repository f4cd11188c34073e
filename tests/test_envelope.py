"""Header reading and header surgery: the body is never touched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.rules.envelope import _HEAD_END, parse_envelope, split_head, with_field, without_fields

RAW = (
    b"From: Sam Patel <sam@med.example.edu>\r\n"
    b'To: "Rivera, Ana" <ARivera@Hospital.example.org>\r\n'
    b"Bcc: me@example.org,\r\n  other@example.org\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_question?=\r\n"
    b"Message-ID: <abc@med.example.edu>\r\n"
    b"In-Reply-To: <m1@hospital.example.org>\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 -0600\r\n"
    b"\r\n"
    b"Body line\r\n\r\nwith a blank line and Bcc: not a header\r\n"
)


def test_envelope_reads_addresses_subject_ids_and_date() -> None:
    envelope = parse_envelope(RAW)
    assert envelope.to == ("arivera@hospital.example.org",)
    assert envelope.bcc == ("me@example.org", "other@example.org")
    assert envelope.subject == "Café question"
    assert envelope.key == envelope.message_id == "<abc@med.example.edu>"
    assert envelope.references == ("<m1@hospital.example.org>",)
    assert envelope.date is not None and envelope.date.utcoffset() is not None
    assert envelope.problems == ()


def test_bcc_is_removed_with_its_continuation_and_nothing_else_changes() -> None:
    stripped = without_fields(RAW, "Bcc")
    assert b"me@example.org" not in split_head(stripped)[0]
    assert split_head(stripped)[2] == split_head(RAW)[2]
    assert stripped == RAW.replace(b"Bcc: me@example.org,\r\n  other@example.org\r\n", b"")


def test_a_message_without_id_has_a_stable_key_and_gets_a_header_added_on_top() -> None:
    raw = RAW.replace(b"Message-ID: <abc@med.example.edu>\r\n", b"")
    assert parse_envelope(raw).key == parse_envelope(raw).key
    assert parse_envelope(raw).key.startswith("sha256:")
    added = with_field(raw, "Message-ID", "<new@x>")
    assert parse_envelope(added).message_id == "<new@x>"
    assert added.endswith(split_head(raw)[2])


def test_broken_headers_become_problems_not_exceptions() -> None:
    envelope = parse_envelope(b"From: \xff\xfe junk\r\nSubject: \x00\r\nTo: not an address\r\n\r\nbody")
    assert envelope.problems
    assert any("no recipients" in p or "not one" in p for p in envelope.problems)


@given(st.binary(max_size=2000))
def test_any_bytes_give_an_envelope(raw: bytes) -> None:
    envelope = parse_envelope(raw)
    assert envelope.key


@given(st.binary(max_size=500).filter(lambda b: b"\r\n\r\n" not in b and b"\n\n" not in b))
def test_surgery_keeps_the_body_byte_for_byte(body: bytes) -> None:
    raw = b"To: a@b.org\r\nBcc: c@d.org\r\nSubject: x\r\n\r\n" + body
    assert split_head(without_fields(raw, "Bcc"))[2] == body
    assert split_head(with_field(raw, "Message-ID", "<x@y>"))[2] == body


_SUBJECT_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))


@given(st.text(_SUBJECT_CHARS, min_size=1, max_size=200).filter(lambda s: s.strip() == s and "  " not in s))
def test_a_long_encoded_subject_reads_back_as_written(subject: str) -> None:
    """A subject folded over several encoded words (a notice's “Mentor Outbox”, long non-ASCII text) reads back
    as the standard library's parser reads it: the folds between encoded words add no spaces."""
    import email
    from email import policy
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "student@example.org"
    message.set_content("x")
    raw = message.as_bytes()
    assert parse_envelope(raw).subject == str(email.message_from_bytes(raw, policy=policy.default)["Subject"])


def test_header_blocks_read_are_remembered_within_a_bound() -> None:
    from agent.rules import envelope as module

    def head(n: int, extra: bytes = b"") -> bytes:
        return f"From: s@x.org\r\nTo: a@b.org\r\nMessage-ID: <{n}.bound@x.org>\r\n".encode() + extra + b"\r\nbody"

    first = parse_envelope(head(0))
    assert parse_envelope(head(0)) is first  # the same block again (here in a whole message): not read twice
    assert parse_envelope(split_head(head(0))[0]) is first
    assert module._remembered.cache_info().maxsize == module.REMEMBERED >= 5000  # a backlog of 5,000 read once
    large = head(1, b"X-Long: " + b"y" * module.REMEMBERED_SIZE + b"\r\n")
    assert parse_envelope(large) is not parse_envelope(large)  # too large to keep
    assert parse_envelope(large) == parse_envelope(large)


def test_the_remembered_header_blocks_are_let_go_of_after_a_pass() -> None:
    from agent.rules import envelope

    parse_envelope(b"From: sam@med.example.edu\r\nTo: ana@hospital.example.org\r\nSubject: kept\r\n\r\nHi\r\n")
    assert envelope._remembered.cache_info().currsize > 0
    envelope.forget_read()  # what the daemon calls after each pass
    assert envelope._remembered.cache_info().currsize == 0


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"\n\r", b" "]), max_size=12))
def test_the_header_block_ends_where_the_blank_line_pattern_first_matches(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    match = _HEAD_END.search(raw)
    expected = (raw[: match.start()], match.group(), raw[match.end() :]) if match else (raw, b"", b"")
    assert split_head(raw) == expected
