"""The mailbox the demo leaves behind: every folder read back from its IMAP server before it stops, written out
as mbox files and one .eml per message, with a README and the timeline."""

from __future__ import annotations

import contextlib
import mailbox as mboxlib
import re
import shutil
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

from agent.demo.servers import HOST, Received
from agent.errors import UserError


def read_folders(port: int, user: str, password: str) -> dict[str, list[bytes]]:
    """Every folder on the demo's IMAP server with its messages, byte for byte, in UID order."""
    from imapclient import IMAPClient

    client = IMAPClient(HOST, port=port, ssl=False, timeout=10)
    try:
        client.login(user, password)
        found: dict[str, list[bytes]] = {}
        for _flags, _delimiter, name in client.list_folders():
            folder = str(name)
            client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in client.search("ALL"))
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            found[folder] = [bytes(data[uid][b"BODY[]"]) for uid in uids if uid in data]
        client.logout()
        return found
    finally:
        with contextlib.suppress(Exception):
            client.shutdown()


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "message"


def _line(raw: bytes, name: str, incoming: bool = False) -> tuple[str, str]:
    """(the subject, one index line: file name, from or to whom, subject)."""
    parsed = message_from_bytes(raw, policy=email_policy.default)
    subject = " ".join(str(parsed.get("Subject", "(no subject)")).split())
    header = parsed.get("From" if incoming else "To")
    people = [a.display_name or a.addr_spec for a in getattr(header, "addresses", ())] or [str(header or "")]
    who = f"{'from' if incoming else 'to'} {', '.join(people)}"
    return subject, f"{name}\n      {who}: {subject}"


README = """\
What mentor-agent did in the demo week, as your mail client would show it.

  mailbox/<folder>/      every message in each IMAP folder, one .eml file each (open with any mail program)
  mbox/<folder>.mbox     the same, one mbox file per folder (e.g. mutt -f mbox/Sent.mbox)
  received-by-mentors/   what the SMTP server accepted, i.e. what the mentors (and a classmate) received
  timeline.txt           the timeline printed in the terminal
  agent.log              the agent's own log (DEBUG), with the demo's servers' log lines
  policies/              the agreements the agent kept (one TOML file per mentor)

Times in the messages are the demo's virtual week (from Monday 23 November 2026).
"""


MARKER = ".mentor-agent-demo"


def prepare_out(out: Path) -> None:
    """``out`` is made empty: a fresh directory, or one a previous demo wrote (never anything else)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UserError(f"{out} exists and was not written by the demo; choose another with --out")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `mentor-agent demo`; the next demo run replaces this directory\n")


def write_export(out: Path, folders: dict[str, list[bytes]], received: list[Received], timeline: list[str]) -> None:
    """The mailbox as files under ``out`` (which exists, empty apart from the demo's own files)."""
    index = [README]
    for folder, messages in sorted(folders.items(), key=lambda item: (item[0] != "INBOX", item[0])):
        safe = _slug(folder, 40) if folder != "INBOX" else "INBOX"
        safe = {
            "sent": "Sent",
            "outbox": "Outbox",
            "scheduled": "Scheduled",
            "sending": "Sending",
            "needs-attention": "Needs-attention",
        }.get(safe, safe)
        directory = out / "mailbox" / safe
        directory.mkdir(parents=True, exist_ok=True)
        (out / "mbox").mkdir(exist_ok=True)
        box = mboxlib.mbox(out / "mbox" / f"{safe}.mbox", create=True)
        try:
            index.append(f"\n{folder} ({len(messages)} message(s)): mailbox/{safe}/, mbox/{safe}.mbox")
            for number, raw in enumerate(messages, 1):
                subject, _ = _line(raw, "")
                name = f"{number:03d}-{_slug(subject)}.eml"
                (directory / name).write_bytes(raw)
                box.add(raw)
                index.append("  " + _line(raw, name, incoming=folder == "INBOX")[1])
            box.flush()
        finally:
            box.close()
    sink = out / "received-by-mentors"
    sink.mkdir(exist_ok=True)
    index.append(f"\nReceived by the SMTP sink ({len(received)} message(s)): received-by-mentors/")
    for number, item in enumerate(received, 1):
        subject, _ = _line(item.content, "")
        name = f"{number:03d}-{_slug(subject)}.eml"
        (sink / name).write_bytes(item.content)
        index.append("  " + _line(item.content, name)[1])
    (out / "README.txt").write_text("\n".join(index) + "\n", encoding="utf-8")
    (out / "timeline.txt").write_text("\n".join(timeline) + "\n", encoding="utf-8")
