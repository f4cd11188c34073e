"""Which door is whose: one row per mail program, as data (``setup`` prints the chosen row; the guide's table in
docs/handing-over.md is written and checked from these rows).

A door is how a finished message reaches mentor-agent from that program:

- ``send``: the program's ordinary Send, with mentor-agent as its outgoing (SMTP) server (``[submission]``);
- ``star``: flag (star) the finished draft in Drafts;
- ``label``: Gmail on the web: the label "Mentor Outbox" on the draft, in the compose window;
- ``folder``: move or save the finished message into the Mentor Outbox folder (works everywhere).

The steps may name ``{host}``, ``{port}``, ``{user}``, ``{password}`` (the submission door's settings) and
``{outbox}``, ``{drafts}`` (the folders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Door = Literal["send", "star", "label", "folder"]

DOORS: dict[Door, str] = {
    "send": "Send as usual, through mentor-agent as the outgoing server",
    "star": "Flag (star) the finished draft",
    "label": 'Label the draft "{outbox}" in the compose window',
    "folder": "Move the finished message into the {outbox} folder",
}


@dataclass(frozen=True)
class Client:
    key: str  # what `setup --client` takes
    name: str
    door: Door
    steps: tuple[str, ...]
    also: str = ""  # another door that works from this program


_SERVER = (
    "server {host}, port {port}, no encryption on this computer (STARTTLS beyond it), user {user}, password {password}"
)

CLIENTS: tuple[Client, ...] = (
    Client(
        "thunderbird",
        "Thunderbird",
        "send",
        (
            "Settings → Account Settings → Outgoing Server (SMTP) → Add: "
            + _SERVER
            + ', authentication "Normal password".',
            "Account Settings → your account → Outgoing Server (SMTP): choose the one you added.",
            "Write and press Send as usual: mail to a mentor is paced (it waits in Scheduled), the rest goes at once.",
        ),
        also="or flag (star) a finished draft in {drafts}",
    ),
    Client(
        "apple-mail",
        "Apple Mail (Mac)",
        "send",
        (
            "Mail → Settings → Accounts → your account → Server Settings → Outgoing Mail Account → Edit SMTP Server "
            'List → +: untick "Automatically manage connection settings"; ' + _SERVER + ".",
            "Choose it as the account's Outgoing Mail Account, then write and press Send as usual.",
        ),
        also="or flag a finished draft in {drafts} (Message → Flag)",
    ),
    Client(
        "outlook",
        "Outlook (desktop)",
        "star",
        (
            "Write the message and close it; answer Save: it is in {drafts}.",
            "In {drafts}, flag it (right-click → Follow Up → Flag Message, or the flag beside it).",
        ),
        also="with an IMAP account, Send through mentor-agent too: File → Account Settings → Change → Outgoing mail: "
        + _SERVER,
    ),
    Client(
        "outlook-web",
        "Outlook on the web",
        "star",
        (
            "Write the message and close it (×): it is saved in {drafts}.",
            "In {drafts}, flag it (the flag icon, or right-click → Flag).",
        ),
        also="or drag it into the {outbox} folder",
    ),
    Client(
        "gmail-web",
        "Gmail on the web",
        "label",
        (
            'In the compose window: ⋮ (More options) → Label → "{outbox}".',
            "Close the window; do not press Send.",
        ),
        also="or star the draft in Drafts",
    ),
    Client(
        "gmail-app",
        "Gmail app (Android, iPhone)",
        "star",
        (
            "Write the message and leave it with the back arrow: it is saved in Drafts.",
            "In Drafts, star it.",
        ),
        also='or label it "{outbox}" on Gmail on the web',
    ),
    Client(
        "iphone-mail",
        "iPhone and iPad Mail",
        "star",
        (
            "Write the message, then Cancel → Save Draft.",
            "In the {drafts} mailbox, swipe left on it → Flag.",
        ),
        also="with mentor-agent on an always-on home server (TLS): Settings → Mail → Accounts → SMTP → " + _SERVER,
    ),
    Client(
        "thunderbird-android",
        "Thunderbird for Android (K-9 Mail)",
        "star",
        (
            "Write the message and save it as a draft (⋮ → Save draft).",
            "In {drafts}, star it.",
        ),
        also="with mentor-agent on an always-on home server (TLS): Settings → the account → Outgoing server: "
        + _SERVER,
    ),
    Client(
        "mutt",
        "mutt, neomutt, aerc",
        "send",
        (
            'neomutt/mutt: set smtp_url = "smtp://{user}@{host}:{port}/", set smtp_pass = "{password}", '
            "set ssl_starttls = no (on this computer).",
            "aerc: outgoing = smtp+insecure://{user}@{host}:{port} (the password with outgoing-cred-cmd).",
            "msmtp (as sendmail): host {host}, port {port}, auth plain, user {user}, tls off (on this computer).",
        ),
        also="or save the finished message into {outbox} (s in mutt)",
    ),
)

BY_KEY = {client.key: client for client in CLIENTS}


def steps_for(
    client: Client,
    *,
    outbox: str,
    drafts: str = "Drafts",
    host: str = "127.0.0.1",
    port: int = 1587,
    user: str = "mentor-agent",
    password: str = "(see setup)",
) -> list[str]:
    """The lines setup prints for ``client``: its door, its steps, and the other door."""
    values = {"outbox": outbox, "drafts": drafts, "host": host, "port": port, "user": user, "password": password}
    lines = [f"{client.name}: {DOORS[client.door].format(**values)}."]
    lines += [f"  {n}. {step.format(**values)}" for n, step in enumerate(client.steps, 1)]
    if client.also:
        lines.append(f"  Also: {client.also.format(**values)}.")
    return lines
