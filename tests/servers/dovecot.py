"""A real Dovecot for tests: own config in a short temp dir, loopback port, passwd-file users, maildir.

One server serves a whole session; each test gets a fresh user (a new one-line passwd-file), so clean-up
costs nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from agent.config.settings import Folders, Imap, Security
from agent.mail.session import Login
from tests.servers import free_port, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
SENT = "Sent Items"  # deliberately not "Sent": tests prove the name comes from SPECIAL-USE
ARCHIVE = "Ablage"  # SPECIAL-USE Archive once created: a name no guard list knows, only the server tells

DEFAULT_MAILBOXES = {SENT: "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash"}

_CONFIG = """\
instance_name = {name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
default_login_user = dovenull
default_internal_user = dovecot
auth_mechanisms = plain login{mechanisms}
auth_failure_delay = 0

disable_plaintext_auth = no
{ssl}
mail_location = maildir:~/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 1 mins
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
{oauth2}userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = {separator}
{prefix}{mailboxes}
  # An archive under a name no list of provider names knows: only its SPECIAL-USE attribute tells (not auto-created).
  mailbox {archive} {{
    special_use = \\Archive
  }}
}}
protocol imap {{
  # Two agents on one account hold 8 connections; the tests' own clients come on top (Gmail allows 15).
  mail_max_userip_connections = 20
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  # no growing delay after failed logins from 127.0.0.1 (Dovecot's documented way to switch it off)
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass(frozen=True)
class User:
    username: str
    password: str


class Dovecot:
    """One Dovecot instance. ``port`` offers plain IMAP and STARTTLS, ``tls_port`` implicit TLS."""

    host = "127.0.0.1"
    _users = itertools.count(1)

    def __init__(
        self,
        cert_pem: Path,
        key_pem: Path,
        ca_pem: Path,
        mailboxes: Mapping[str, str] | None = None,
        *,
        introspection_url: str = "",
        prefix: str = "",
    ) -> None:
        """``mailboxes``: folder name -> RFC 6154 attribute ("" for none), created for every user; by default
        "Sent Items" (\\Sent), Drafts and Trash. The provider profiles pass their own (tests/servers/providers).
        ``introspection_url``: also take OAuth2 logins (XOAUTH2, OAUTHBEARER), each token checked there (RFC 7662,
        POST; the answer's "username" must be the user's). ``prefix``: the personal namespace's prefix with "." as
        its separator (``INBOX.``, as Courier and older Dovecot set-ups: a CREATE without it is refused)."""
        self.root = Path(tempfile.mkdtemp(prefix="mad-", dir="/tmp"))
        self.root.chmod(0o755)
        for sub in ("run", "state"):
            (self.root / sub).mkdir(mode=0o755)
        home = self.root / "home"
        home.mkdir(mode=0o755)
        os.chown(home, _uid("nobody"), -1)
        # One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a second,
        # but a file it has never seen is read at once.
        self.users = self.root / "users"
        self.users.mkdir(mode=0o755)
        self.ca_pem = ca_pem
        self.port = free_port()
        self.tls_port = free_port()
        self.conf = self.root / "dovecot.conf"
        ssl_lines = f"ssl = yes\nssl_cert = <{cert_pem}\nssl_key = <{key_pem}\nssl_min_protocol = TLSv1.2"
        if Path("/usr/share/dovecot/dh.pem").exists():
            ssl_lines += "\nssl_dh = </usr/share/dovecot/dh.pem"
        self.conf.write_text(
            _CONFIG.format(
                name=self.root.name,
                root=self.root,
                ssl=ssl_lines,
                archive=ARCHIVE,
                separator="." if prefix else "/",
                prefix=f"  prefix = {prefix}\n" if prefix else "",
                mailboxes=_mailboxes(mailboxes if mailboxes is not None else DEFAULT_MAILBOXES),
                port=self.port,
                tls_port=self.tls_port,
                mechanisms=" xoauth2 oauthbearer" if introspection_url else "",
                oauth2=_oauth2_passdb(self.root, introspection_url) if introspection_url else "",
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.process is not None:
            return
        with (self.root / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        if not (wait_for_port(self.port) and wait_for_port(self.tls_port)):
            self.stop()
            raise RuntimeError(f"Dovecot did not start; log:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the master and every process of this instance, so that client connections drop at once.

        Dovecot's own shutdown leaves logged-in imap processes running until they notice; tests of
        "the server went away" need the connections to close now.
        """
        if self.process is None:
            return
        # Signal the master and its children together: the master alone takes ~6 s to shut down.
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        self._signal_children(sig)
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        deadline = time.monotonic() + 0.5
        while self._children() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._signal_children(signal.SIGKILL)
        self._wait_port_closed()

    def _children(self) -> list[int]:
        """Pids of this instance's processes: Dovecot titles them "dovecot-<instance_name>/<service>"."""
        prefix = f"dovecot-{self.root.name}/".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "cmdline").read_bytes().startswith(prefix):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def _signal_children(self, sig: int) -> None:
        for pid in self._children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """Crash the server: SIGKILL to the master and every process of this instance."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_port_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and wait_for_port(self.port, timeout=0.05):
            time.sleep(0.05)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stdout.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    # -- users and settings ----------------------------------------------------------------------------
    def new_user(self, prefix: str = "student") -> User:
        """A fresh user with an empty mailbox (plus the auto-created Sent Items, Drafts, Trash)."""
        user = User(f"{prefix}{next(self._users)}-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
        path = self.users / user.username
        path.write_text(f"{user.username}:{{PLAIN}}{user.password}::::::\n")
        path.chmod(0o644)
        return user

    def set_password(self, user: User, password: str) -> User:
        """Change a user's password (as when the student changes it at the provider); the user as it is now."""
        path = self.users / user.username
        path.write_text(f"{user.username}:{{PLAIN}}{password}::::::\n")
        time.sleep(1.1)  # Dovecot re-reads a changed passwd-file at most once a second
        return User(user.username, password)

    def settings(self, user: User, security: Security = "plain", **changes: Any) -> Imap:
        port = self.tls_port if security == "tls" else self.port
        values: dict[str, Any] = {
            "host": self.host,
            "port": port,
            "security": security,
            "username": user.username,
            "timeout": 5.0,
            "idle_renew": 30,
            "poll_interval": 5,
            "folders": Folders(),
        }
        values.update(changes)
        return Imap(**values)

    @staticmethod
    def login(user: User) -> Login:
        return Login(user.username, user.password)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_pem))

    # -- direct access for assertions ------------------------------------------------------------------
    @contextlib.contextmanager
    def client(self, user: User) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(user.username, user.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()
            with contextlib.suppress(Exception):
                client.shutdown()

    def append(self, user: User, folder: str, raw: bytes, flags: Sequence[str] = ()) -> int:
        """APPEND ``raw`` to ``folder`` (created if missing); the new UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, raw, flags=tuple(flags))
            # From APPENDUID: the agent may have moved the message on before a SEARCH could see it.
            found = re.search(rb"\[APPENDUID \d+ (\d+)\]", answer or b"")
            assert found, f"no APPENDUID in {answer!r}"
            return int(found.group(1))

    def folders(self, user: User) -> dict[str, set[str]]:
        """Folder name -> its LIST flags (as strings, e.g. ``{"\\\\Sent"}``)."""
        with self.client(user) as client:
            return {
                name: {flag.decode() if isinstance(flag, bytes) else str(flag) for flag in flags}
                for flags, _delimiter, name in client.list_folders()
            }

    def messages(self, user: User, folder: str) -> dict[int, bytes]:
        """UID -> exact bytes of every message in ``folder`` (empty if the folder does not exist)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return {}
            data = client.fetch(uids, ["BODY.PEEK[]"])
            # A message moved away between the SEARCH and the FETCH comes back without a body (or with NIL, when
            # it was expunged in the middle): it is not here.
            return {int(uid): bytes(item[b"BODY[]"]) for uid, item in data.items() if item.get(b"BODY[]") is not None}

    def flags(self, user: User, folder: str, uid: int) -> set[str]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            data = client.fetch([uid], ["FLAGS"])
            return {f.decode() for f in data[uid][b"FLAGS"]} if uid in data else set()


def _oauth2_passdb(root: Path, introspection_url: str) -> str:
    settings = root / "oauth2.conf"
    settings.write_text(
        f"introspection_mode = post\nintrospection_url = {introspection_url}\n"
        "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
    )
    settings.chmod(0o644)
    return f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {settings}\n}}\n"


def _mailboxes(mailboxes: Mapping[str, str]) -> str:
    blocks = []
    for name, attribute in mailboxes.items():
        special = f"    special_use = {attribute}\n" if attribute else ""
        blocks.append(f'  mailbox "{name}" {{\n{special}    auto = subscribe\n  }}')
    return "\n".join(blocks)


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def available() -> str | None:
    """None when Dovecot can run here, else the reason to skip."""
    if not Path(DOVECOT).exists():
        return "Dovecot is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "the Dovecot test server needs root (it drops to dovenull/nobody itself)"
    return None
