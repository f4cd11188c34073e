"""A server, or a link, that trickles: a byte every few seconds, never silent long enough for the socket's own
timeout (``[imap].timeout``, per read). Before, a pass that met one waited on it for ever: nothing was sent, nothing
told, even once the server was well again. Now a connection that moves too little while a command waits
(agent.mail.pulse) is closed and opened again, and what waited goes, once."""

from __future__ import annotations

import contextlib
import email
import os
import re
import signal
import smtplib
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.agent_process import Agent, eventually, policy_text
from tests.servers.dovecot import Dovecot, User
from tests.servers.rewriting_proxy import RewritingProxy
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import mail
from tests.test_submission_door import open_door, password, start, submit

TRICKLE = 0.25  # seconds between bytes: four times within the agent's one-second read timeout below


class Trickle:
    """A proxy's ``pace``: the first connection that sends a line ``starts`` matches trickles from that line on,
    ``per_byte`` seconds a byte, until ``on`` is set False."""

    def __init__(self, starts: Callable[[bytes], bool], per_byte: float = TRICKLE) -> None:
        self.starts = starts
        self.per_byte = per_byte
        self.on = True
        self.stalled: list[int] = []  # that connection's number

    def __call__(self, session: int, line: bytes) -> float:
        if self.on and not self.stalled and self.starts(line):
            self.stalled.append(session)
        return self.per_byte if self.on and self.stalled == [session] else 0.0


def behind(proxy: RewritingProxy, dovecot: Dovecot, user: User, tmp_path: Path, smtp_server: SmtpServer) -> Agent:
    """An agent whose IMAP goes through ``proxy``, with a read timeout of one second (a two-second window)."""
    proxy.start()
    agent = Agent(tmp_path, dovecot, user, smtp_server)
    agent.write_config()
    agent.policy(policy_text())
    text = agent.config.read_text().replace(f"port = {dovecot.port}\n", f"port = {proxy.port}\n")
    agent.config.write_text(text.replace("timeout = 10\n", "timeout = 1\n", 1))  # [imap] first
    return agent


@pytest.mark.parametrize(
    "stalls_at",
    [
        pytest.param(rb"^\* \d+ FETCH ", id="the Outbox's messages read"),
        pytest.param(rb"^\S+ OK .*Logged in", id="the login's answer"),
        pytest.param(rb"^\S+ OK .*(Move|Copy) completed", id="the claim's MOVE answered"),
    ],
)
def test_a_connection_that_trickles_is_closed_and_what_waited_goes_once(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer, stalls_at: bytes
) -> None:
    user = dovecot.new_user()
    with dovecot.client(user) as client:
        client.create_folder("Mentor Outbox")
        client.append("Mentor Outbox", mail("Went despite the trickle", to="friend@example.org"))
    trickle = Trickle(lambda line: re.match(stalls_at, line) is not None)
    proxy = RewritingProxy(dovecot.port, pace=trickle)
    agent = behind(proxy, dovecot, user, tmp_path, smtp_server)
    try:
        agent.start(until="")
        smtp_server.wait_for(1, timeout=30)
        assert trickle.stalled, "the proxy never trickled: the test did not test"
        eventually(lambda: "too slow" in agent.log(), timeout=5)
        assert agent.process is not None and agent.process.poll() is None, agent.log()
        sent = [email.message_from_bytes(m.content) for m in smtp_server.messages]
        assert [str(m["Subject"]) for m in sent] == ["Went despite the trickle"]
        eventually(lambda: not agent.subjects("Mentor Outbox") and len(agent.subjects("Sent")) == 1, timeout=15)
        assert "Traceback" not in agent.log(), agent.log()
    finally:
        agent.end()
        proxy.stop()


def test_a_big_message_on_a_slow_link_goes_and_is_not_taken_for_a_trickle(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The other side of the rule: a link that is slow but moves (here 400 kB/s from the server, and a read timeout
    of one second) reads a message of 1.5 MB, longer than the window, without its connection being taken for a
    trickle: a literal still coming counts as it comes."""
    user = dovecot.new_user()
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "student@med.example.edu", "friend@example.org", "The scans"
    big.set_content("Here are the scans.")
    big.add_attachment(os.urandom(1_100_000), maintype="application", subtype="octet-stream", filename="scans.bin")
    with dovecot.client(user) as client:
        client.create_folder("Mentor Outbox")
        client.append("Mentor Outbox", big.as_bytes())
    proxy = RewritingProxy(dovecot.port, rate=400_000)
    agent = behind(proxy, dovecot, user, tmp_path, smtp_server)
    try:
        agent.start(until="")
        smtp_server.wait_for(1, timeout=60)
        eventually(lambda: not agent.subjects("Mentor Outbox") and agent.subjects("Sent") == ["The scans"], timeout=60)
        assert len(smtp_server.messages) == 1 and len(smtp_server.messages[0].content) > 1_400_000
        assert "too slow" not in agent.log() and "connection lost" not in agent.log(), agent.log()
    finally:
        agent.end()
        proxy.stop()


def test_a_message_handed_over_while_the_server_trickles_is_answered_451_then_taken_once(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The submission door's own connection: its APPEND stuck on a trickle is ended and her program told to try again
    (451), never left waiting on a thread for ever; her retry is taken, once."""
    user = dovecot.new_user()
    trickle = Trickle(append_go_ahead)
    proxy = RewritingProxy(dovecot.port, pace=trickle)
    agent = behind(proxy, dovecot, user, tmp_path, smtp_server)
    port = open_door(agent)
    raw = mail("Handed over in the trickle", to="friend@example.org")
    try:
        start(agent, port)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            submit(port, password(agent), raw, ["friend@example.org"])
        assert refused.value.smtp_code == 451 and trickle.stalled, agent.log()
        submit(port, password(agent), raw, ["friend@example.org"])  # her program tries again
        smtp_server.wait_for(1, timeout=20)
        eventually(lambda: agent.subjects("Sent") == ["Handed over in the trickle"], timeout=20)
        assert len(smtp_server.messages) == 1 and not agent.subjects("Mentor Outbox")
        assert "too slow" in agent.log() and agent.process is not None and agent.process.poll() is None
    finally:
        agent.end()
        proxy.stop()


def test_a_stop_while_a_handed_over_message_trickles_ends_at_once(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Hostile round on the trickle: a SIGTERM while the door's APPEND trickled (nobody waits for its answer any
    more) took 95 s to end the process, the thread stuck in the read holding up Python's exit. Now the stop ends that
    connection too; her program's retry after the restart is taken once."""
    user = dovecot.new_user()
    trickle = Trickle(append_go_ahead, per_byte=0.9)
    proxy = RewritingProxy(dovecot.port, pace=trickle)
    agent = behind(proxy, dovecot, user, tmp_path, smtp_server)
    agent.config.write_text(agent.config.read_text().replace("timeout = 1\n", "timeout = 10\n", 1))
    port = open_door(agent)
    raw = mail("Handed over as she shut the lid", to="friend@example.org")
    try:
        start(agent, port)
        handing = threading.Thread(target=_submit_quietly, args=(port, password(agent), raw), daemon=True)
        handing.start()
        eventually(lambda: trickle.stalled, timeout=10)  # the door's APPEND trickles
        time.sleep(0.5)
        began = time.monotonic()
        assert agent.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - began < 10, "the stop waited on the trickle"
        trickle.on = False
        start(agent, port)
        submit(port, password(agent), raw, ["friend@example.org"])  # her program tries again
        smtp_server.wait_for(1, timeout=20)
        eventually(lambda: agent.subjects("Sent") == ["Handed over as she shut the lid"], timeout=20)
        assert len(smtp_server.messages) == 1
    finally:
        agent.end()
        proxy.stop()


def append_go_ahead(line: bytes) -> bool:
    return line == b"+ OK\r\n"  # the server's go-ahead for an APPEND's literal (IDLE's is "+ idling")


def _submit_quietly(port: int, secret: str, raw: bytes) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        submit(port, secret, raw, ["friend@example.org"])
