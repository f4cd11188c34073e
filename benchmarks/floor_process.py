"""The backlog's floor as a process of its own, timed from its start as the daemon is.

The daemon's backlog figure runs from ``python -m agent run`` to the last message at the server, so it includes
Python's start and the imports; the floor done inside the benchmark's own process does not. This one does:
Python's start, imapclient's and aiosmtplib's imports, the IMAP login, the header fetch, the bodies and one SMTP
connection, and nothing else.

The same script with imports put in front of it bounds what the daemon can reach: with only the imports the
project's required stack costs (:data:`STACK_IMPORTS`), or with exactly the daemon's own (:data:`DAEMON_IMPORTS`),
the floor's work is done and nothing of the daemon's (no config, no policy, no ledger, no claim, no filing in Sent).
"""

from __future__ import annotations

import subprocess
import sys
import time

from harness import MENTOR, STUDENT, Servers, multiappend

from tests.agent_process import OUTBOX

FLOOR_SCRIPT = """
import asyncio, sys
import aiosmtplib
from imapclient import IMAPClient
host, port, user, password, smtp_host, smtp_port, outbox, friend, mentor, student = sys.argv[1:]
client = IMAPClient(host, port=int(port), ssl=False, timeout=30)
client.login(user, password)
client.select_folder(outbox)
uids = client.search("ALL")
headers = {}
for start in range(0, len(uids), 500):
    headers.update(client.fetch(uids[start : start + 500], ["FLAGS", "BODY.PEEK[HEADER]"]))
marker = b"\\r\\nTo: " + friend.encode()
to_send = [uid for uid, item in headers.items() if marker in b"\\r\\n" + bytes(item[b"BODY[HEADER]"])]
to_send.append(next(uid for uid in uids if uid not in set(to_send)))

async def send_all():
    connection = aiosmtplib.SMTP(hostname=smtp_host, port=int(smtp_port))
    await connection.connect()
    for start in range(0, len(to_send), 500):
        for item in client.fetch(to_send[start : start + 500], ["BODY.PEEK[]"]).values():
            raw = bytes(item[b"BODY[]"])
            await connection.sendmail(student, [friend if marker in b"\\r\\n" + raw else mentor], raw)
    await connection.quit()

asyncio.run(send_all())
client.logout()
"""


# What the daemon's run imports of the required stack (pydantic-settings builds on pydantic; tenacity retries), and
# what it imports in all: the modules `mentor-agent run` loads before its first pass.
STACK_IMPORTS = "import pydantic_settings, tenacity\nfrom pydantic import BaseModel\n"
DAEMON_IMPORTS = "import agent.cli.main, agent.daemon.service\n"


def backlog_floor_process(servers: Servers, raws: list[bytes], friend: str, imports: str = "") -> float:
    """``bench_mail.backlog_floor`` as a script started as a process, timed from its start until all the
    pass-through messages (to ``friend``) and the mentor's first are at the server; ``imports`` go first."""
    user = servers.user()
    smtp = servers.smtp()
    client = servers.client(user)
    try:
        multiappend(client, OUTBOX, raws)
    finally:
        client.logout()
    expected = sum(1 for raw in raws if b"To: " + friend.encode() in raw) + 1
    try:
        began = time.monotonic()
        imap = (servers.dovecot.host, str(servers.dovecot.port), user.username, user.password)
        script = subprocess.Popen(
            [
                sys.executable,
                "-c",
                imports + FLOOR_SCRIPT,
                *imap,
                smtp.host,
                str(smtp.port),
                OUTBOX,
                friend,
                MENTOR,
                STUDENT,
            ]
        )
        smtp.wait_for(expected, timeout=120)
        elapsed = time.monotonic() - began
        assert script.wait(60) == 0, "the floor script failed"
        return elapsed
    finally:
        smtp.stop()
