"""The corpus of tests/corpus/digest/ through the real daemon, Dovecot and aiosmtpd: signed and encrypted mail goes
alone and byte for byte while the rest shares a digest; addresses beyond ASCII (SMTPUTF8 or a clean refusal);
one mentor however her domain is spelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.store.ledger import DONE, SENDING
from tests.agent_process import MENTOR, Agent, agent, eventually, mail, parse, policy_text
from tests.servers.smtp import SmtpServer

__all__ = ["agent"]
pytestmark = pytest.mark.servers

CORPUS = Path(__file__).resolve().parent / "corpus" / "digest"


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_signed_and_encrypted_mail_goes_alone_byte_for_byte_the_rest_as_one_digest(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="2s", over_limit="batch"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    sealed = {name: (CORPUS / name).read_bytes() for name in ("pgp-signed.eml", "smime-pkcs7.eml")}
    agent.drop(mail("research question"))
    for raw in sealed.values():
        agent.drop(raw)
    agent.drop(mail("elective"))
    received = agent.smtp.wait_for(4, timeout=20)
    assert all(r.rcpt_tos == (MENTOR,) for r in received)
    digests = [r for r in received[1:] if "2 updates from Sam" in str(parse(r.content)["Subject"])]
    assert len(digests) == 1
    text = parse(digests[0].content).get_body(("plain",))
    assert text is not None and "research question" in text.get_content() and "elective" in text.get_content()
    assert "Signed" not in text.get_content() and "S/MIME" not in text.get_content()
    contents = [crlf(r.content) for r in received]
    for name, raw in sealed.items():
        assert contents.count(crlf(raw)) == 1, f"{name} must arrive alone, exactly as the student wrote it"
    eventually(lambda: agent.folder_raw("Scheduled") == {} and agent.folder_raw("Sending") == {})
    assert len(agent.smtp.messages) == 4
    ledger = agent.ledger()
    for key in ("<pgp-signed.4f1c@med.example.edu>", "<smime-enveloped.c9e1@med.example.edu>"):
        row = ledger.get(key)
        assert row is not None and row.standalone and row.digest is None, key  # never planned into a digest


UTF8 = (CORPUS / "utf8-address.eml").read_bytes()
UTF8_RCPT = "müller@xn--exmple-cua.org"


def test_an_address_beyond_ascii_is_refused_alone_where_the_server_lacks_smtputf8(agent: Agent) -> None:
    agent.start()
    agent.drop(UTF8)
    agent.drop(mail("unrelated, to the mentor"))
    eventually(lambda: len(agent.folder_raw("Needs attention")) == 1)
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    notice = eventually(lambda: [n for n in agent.notices() if "SMTPUTF8" in n.get_content()])[0]
    assert UTF8_RCPT in notice.get_content() and "in doubt" not in notice.get_content()
    assert agent.process is not None and agent.process.poll() is None, "the daemon must go on"
    assert eventually(lambda: agent.subjects("Sent")) == ["unrelated, to the mentor"]
    ledger = agent.ledger()
    assert ledger.in_states(SENDING) == []
    assert eventually(lambda: [row.subject for row in ledger.in_states(DONE)]) == ["unrelated, to the mentor"]


def test_an_address_beyond_ascii_goes_with_smtputf8_where_offered(agent: Agent) -> None:
    agent.smtp.stop()
    agent.smtp = SmtpServer(smtputf8=True)
    agent.smtp.start()
    try:
        agent.write_config()
        agent.start()
        agent.drop(UTF8)
        [received] = agent.smtp.wait_for(1, timeout=10)
        assert received.rcpt_tos == (UTF8_RCPT,)
        assert crlf(received.content) == crlf(UTF8)
        eventually(lambda: len(agent.folder_raw("Sent")) == 1)
    finally:
        agent.end()
        agent.smtp.stop()


def to(subject: str, address: str) -> bytes:
    """A message with a raw UTF-8 To: header (RFC 6532), as mail programs write one today."""
    head, _, body = mail(subject).partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"To:")]
    return b"\r\n".join([*lines, b"To: " + address.encode()]) + b"\r\n\r\n" + body


def test_one_mentor_however_her_domain_is_spelled(agent: Agent) -> None:
    agent.smtp.stop()
    agent.smtp = SmtpServer(smtputf8=True)  # a To: header in UTF-8 (RFC 6532) needs SMTPUTF8 as well
    agent.smtp.start()
    agent.write_config()
    try:
        agent.policy(policy_text(max_per_day=1).replace("hospital.example.org", "HOSPITÄL.example.org"))
        agent.start()
        agent.drop(to("first", "Dr. Ana Rivera <arivera@hospitäl.example.org>"))
        agent.smtp.wait_for(1)
        agent.drop(to("second, punycode", "arivera@XN--HOSPITL-BXA.example.org"))
        eventually(lambda: agent.subjects("Scheduled") == ["second, punycode"])
        notice = eventually(lambda: [n for n in agent.notices() if "second" in str(n["Subject"])])[0]
        assert "Dr. Ana Rivera" in str(notice["Subject"])
        assert len(agent.smtp.messages) == 1
    finally:
        agent.end()
        agent.smtp.stop()


def test_a_message_to_an_address_beyond_ascii_goes_alone_as_written_never_unnamed_in_a_digest(agent: Agent) -> None:
    """A digest's headers are ASCII: a message whose Cc (or Reply-To) is beyond ASCII is paced as its own e-mail
    and goes as she wrote it, with SMTPUTF8; a digest never sends to a recipient its headers leave out."""
    agent.smtp.stop()
    agent.smtp = SmtpServer(smtputf8=True)
    agent.smtp.start()
    try:
        agent.write_config()
        agent.policy(policy_text(min_gap="1s", over_limit="batch"))
        agent.start()
        agent.drop(mail("first"))
        agent.smtp.wait_for(1)
        wide = []
        for subject in ("with a colleague", "with him again"):
            head, _, body = mail(subject).partition(b"\r\n\r\n")
            wide.append(head + "\r\nCc: Jürgen Müller <müller@exämple.org>".encode() + b"\r\n\r\n" + body)
        for raw in (*wide, mail("plain a"), mail("plain b")):
            agent.drop(raw)
        received = agent.smtp.wait_for(4, timeout=20)
        eventually(lambda: agent.folder_raw("Scheduled") == {} and agent.folder_raw("Sending") == {})
        assert len(agent.smtp.messages) == 4
        alone = [r for r in received if UTF8_RCPT in r.rcpt_tos]
        assert sorted(crlf(r.content) for r in alone) == sorted(crlf(raw) for raw in wide)
        assert all(r.rcpt_tos == (MENTOR, UTF8_RCPT) for r in alone)
        [digest] = [r for r in received[1:] if r not in alone]
        assert "2 updates from Sam" in str(parse(digest.content)["Subject"]) and digest.rcpt_tos == (MENTOR,)
        for raw in wide:
            row = agent.ledger().get(str(parse(raw)["Message-ID"]))
            assert row is not None and row.standalone and row.digest is None
    finally:
        agent.end()
        agent.smtp.stop()
