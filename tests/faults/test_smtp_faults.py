"""The SMTP server answers 421 (and hangs up), 451 or not at all on a random third of attempts, and 550 for some
recipients: every message is delivered once or reported (Needs attention + notice); none is retried forever.

Bounded to the first send's own retries (five attempts, backoff of a few seconds): the injected transient
faults never hit one message more than three times in a row, so the ten-minute later rounds are not needed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.agent_process import MENTOR, Agent, mail, parse
from tests.faults.accounting import UNLIMITED_POLICY, account, settle
from tests.servers.smtp import HOST, SmtpServer, _Fault, _Handler

pytestmark = pytest.mark.servers

CLIENT_TIMEOUT = 2  # seconds: the agent's [smtp] timeout in this test, so that a "no answer" costs little


class _Flaky(_Handler):
    """The test server's handler, plus random faults decided at MAIL FROM (one per transaction)."""

    def __init__(self, server: FlakySmtp) -> None:
        super().__init__(server.state)
        self.server = server

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.server.pick()
        self.server.faults[fault] += 1
        if fault == "421":
            return await self._answer(server, _Fault("MAIL", "421 4.3.2 closing, try later", close=True))
        if fault == "451-mail":
            return "451 4.3.0 try again later"
        if fault == "timeout-mail":
            await asyncio.sleep(CLIENT_TIMEOUT + 1)
            return "451 4.3.0 too late"
        if fault in ("451-data", "timeout-data"):
            session.flaky = fault  # type: ignore[attr-defined]
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = getattr(session, "flaky", None)
        session.flaky = None  # type: ignore[attr-defined]
        if fault == "451-data":
            return "451 4.3.0 temporary failure after the body"
        answer = await super().handle_DATA(server, session, envelope)
        if fault == "timeout-data":  # stored, then no answer in time: the agent cannot know: in doubt
            await asyncio.sleep(CLIENT_TIMEOUT + 1)
        return answer


class FlakySmtp(SmtpServer):
    KINDS = (
        "421",
        "451-mail",
        "timeout-mail",
        "451-data",
        "421",
        "451-mail",
        "timeout-mail",
        "451-data",
        "timeout-data",
    )

    def __init__(self, seed: int, rate: float = 1 / 3, max_in_a_row: int = 3) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rate = rate
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.faults: Counter[str] = Counter()

    def pick(self) -> str:
        if self.in_a_row < self.max_in_a_row and self.rng.random() < self.rate:
            self.in_a_row += 1
            return self.rng.choice(self.KINDS)
        self.in_a_row = 0
        return "none"

    def start(self) -> None:
        if self.controller is None:
            self.controller = Controller(
                _Flaky(self), hostname=HOST, port=self.port, server_hostname="localhost", **self._kwargs
            )
            self.controller.start()


@pytest.fixture
def flaky_smtp() -> Iterator[FlakySmtp]:
    server = FlakySmtp(seed=7)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_smtp_faults_each_message_delivered_once_or_reported(
    agent: Agent, flaky_smtp: FlakySmtp, soak: bool, figures: Callable[..., Any]
) -> None:
    messages = 120 if soak else 24
    agent.smtp = flaky_smtp
    agent.write_config()
    smtp_section = agent.config.read_text().split("[smtp]")
    agent.config.write_text(
        smtp_section[0] + "[smtp]" + smtp_section[1].replace("timeout = 10", f"timeout = {CLIENT_TIMEOUT}")
    )
    rng = random.Random(99)
    subjects = [f"smtp-{n:03d}" for n in range(messages)]
    bounced = {s for n, s in enumerate(subjects) if n % 8 == 5}  # "550 on some"
    agent.policy(UNLIMITED_POLICY)
    agent.start()
    for subject in subjects:
        if subject in bounced:
            address = f"gone-{subject}@example.org"
            flaky_smtp.refuse(address, "550 5.1.1 no such user")
        else:
            address = MENTOR if rng.random() < 0.5 else "friend@example.org"
        agent.drop(mail(subject, to=address))
    waited = settle(agent, subjects, timeout=60 + messages * 6, folders=("Outbox", "Sending", "Scheduled"))
    tally = account(agent, subjects)
    attempts = sum(flaky_smtp.faults.values())
    figures(
        tries=attempts,
        faults=dict(flaky_smtp.faults),
        messages=messages,
        survived=messages - len(tally.lost) - len(tally.duplicated),
        **tally.figures(),
        settle_seconds=round(waited, 1),
    )
    assert not agent.process_ended(), agent.log()[-3000:]
    assert tally.lost == [], f"lost: {tally.lost}\n{agent.log()[-4000:]}"
    assert tally.duplicated == [], f"sent twice: {tally.duplicated}"
    assert tally.unreported_attention == [], f"in Needs attention without a notice: {tally.unreported_attention}"
    # Each 550 is reported with the server's words, and never tried again.
    notices = {str(n["Subject"]): n.get_content() for n in agent.notices()}
    for subject in bounced:
        assert any(subject in title and "550" in body for title, body in notices.items()), subject
    received = Counter(str(parse(m.content)["Subject"]).strip() for m in flaky_smtp.messages)
    assert not set(received) & bounced
    # None retried forever: at most five transactions (one send's attempts) per message.
    assert attempts <= 5 * messages
    assert agent.folder_raw("Scheduled") == {}, "a message went to the ten-minute retry rounds"
    time.sleep(1)
    assert sum(flaky_smtp.faults.values()) == attempts, "still trying after everything was decided"
