"""A mail program's Sent copy of what it handed over is the message the agent holds, whatever the order of its
header fields and with or without the Bcc it sent without (hostile round on issue 22, a5: neomutt's real bytes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.rules.envelope import same_written, with_field, without_fields
from agent.rules.submitted import as_submitted

HERE = Path(__file__).parent / "data" / "neomutt_bcc"
NOW = datetime(2026, 12, 6, 8, 7, tzinfo=UTC)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def held_and_fcc() -> tuple[bytes, bytes]:
    wire = _crlf((HERE / "wire.eml").read_bytes())  # what neomutt -b submitted: no Bcc
    fcc = _crlf((HERE / "fcc.eml").read_bytes())  # its own Sent copy: Bcc right after To, Status, Lines, ...
    held = as_submitted(wire, ["arivera@hospital.example.org", "dean@med.example.edu"], domain="x", now=NOW).raw
    return held, fcc


def test_neomutts_fcc_copy_is_the_message_held_with_its_bcc_written_back() -> None:
    held, fcc = held_and_fcc()
    assert same_written(held, fcc, bcc_optional=True)
    assert same_written(held, fcc)  # the same addresses, in another place


def test_a_copy_without_the_bcc_is_the_same_for_sent_copies_only() -> None:
    held, fcc = held_and_fcc()
    bare = without_fields(fcc, "Bcc")
    assert same_written(held, bare, bcc_optional=True) and same_written(bare, held, bcc_optional=True)
    assert not same_written(held, bare)  # a door's copy in Drafts: strict


def test_another_bcc_or_another_text_is_another_message() -> None:
    held, fcc = held_and_fcc()
    other = with_field(without_fields(fcc, "Bcc"), "Bcc", "someone@example.org")
    assert not same_written(held, other, bcc_optional=True)
    assert not same_written(held, fcc.replace(b"Hello", b"Goodbye"), bcc_optional=True)
    assert not same_written(held, fcc.replace(b"Subject: Bcc test", b"Subject: Bcc test 2"), bcc_optional=True)
