"""Gmail web's compose window, as seen over IMAP through the Gmail emulation (a test helper).

    window = ComposeWindow(stack, labels=("Mentor Outbox",))
    window.save(mail("Question"))      # a draft: in [Gmail]/Drafts, each label's folder and All Mail, \\Draft
    window.save(mail("Question", body="more"))   # autosave: the old message goes, the new one has new UIDs
    window.send()                      # Send: the Drafts label goes, the message is in [Gmail]/Sent Mail

Everything goes through the proxy (a plain IMAP client), so the label layer (:mod:`.labels`) does what Gmail does:
one message in several folders. An autosave replaces the draft while it is still a draft (still in Drafts): the
old message is expunged from All Mail, which removes every label. A draft taken out of Drafts meanwhile (its Drafts
label removed, as mentor-agent does when it takes it) is not a draft any more: the next save makes a new draft
with the window's labels and leaves the old message alone (the copy that "comes back").
"""

from __future__ import annotations

from collections.abc import Sequence

from imapclient import IMAPClient

from tests.servers.providers.fixtures import Stack

__all__ = ["ComposeWindow"]

DRAFTS = "[Gmail]/Drafts"


class ComposeWindow:
    def __init__(self, stack: Stack, labels: Sequence[str] = ()) -> None:
        assert stack.profile.all_mail is not None, "a Gmail profile"
        self.stack = stack
        self.all_mail = stack.profile.all_mail
        self.labels = tuple(labels)
        self.raw: bytes | None = None  # the draft as last saved
        self.saves = 0

    def save(self, raw: bytes) -> None:
        """Save the draft (the first time, or an autosave): the new message, then the old one gone if a draft."""
        with self.stack.client() as client:
            for folder in (DRAFTS, *self.labels):
                client.append(folder, raw, flags=("\\Draft", "\\Seen"))
            old, self.raw = self.raw, raw
            self.saves += 1
            if old is not None and old != raw and _find(client, DRAFTS, old):
                _expunge(client, self.all_mail, _find(client, self.all_mail, old))

    def send(self) -> None:
        """Press Send: the message leaves Drafts (its label) and is in Sent Mail (delivery is not emulated)."""
        assert self.raw is not None, "nothing saved"
        with self.stack.client() as client:
            client.append(self.stack.profile.sent, self.raw, flags=("\\Seen",))
            _expunge(client, DRAFTS, _find(client, DRAFTS, self.raw))
            client.select_folder(self.stack.profile.sent)
            client.remove_flags(_find(client, self.stack.profile.sent, self.raw), ["\\Draft"], silent=True)


def _find(client: IMAPClient, folder: str, raw: bytes) -> list[int]:
    client.select_folder(folder)
    uids = client.search(["ALL"])
    if not uids:
        return []
    found = client.fetch(uids, ["BODY.PEEK[]"]).items()
    return sorted(uid for uid, item in found if _lines(bytes(item[b"BODY[]"])) == _lines(raw))


def _lines(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _expunge(client: IMAPClient, folder: str, uids: list[int]) -> None:
    if uids:
        client.select_folder(folder)
        client.add_flags(uids, ["\\Deleted"], silent=True)
        client.uid_expunge(uids)
