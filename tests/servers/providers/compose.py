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

On a profile without labels (plain Dovecot, Fastmail) the same window puts a copy in Drafts and one in each
"label" folder, and an autosave replaces each copy (a mail program that saves into two folders).
"""

from __future__ import annotations

from collections.abc import Sequence

from imapclient import IMAPClient

from tests.servers.providers.fixtures import Stack

__all__ = ["ComposeWindow"]


class ComposeWindow:
    def __init__(self, stack: Stack, labels: Sequence[str] = ()) -> None:
        self.stack = stack
        self.drafts = next(name for name, use in stack.profile.folders.items() if use == "\\Drafts")
        self.all_mail = stack.profile.all_mail
        self.labels = tuple(labels)
        self.raw: bytes | None = None  # the draft as last saved
        self.saves = 0

    def save(self, raw: bytes) -> None:
        """Save the draft (the first time, or an autosave): the new message, then the old one gone if a draft."""
        with self.stack.client() as client:
            for folder in (self.drafts, *self.labels):
                client.append(folder, raw, flags=("\\Draft", "\\Seen"))
            old, self.raw = self.raw, raw
            self.saves += 1
            if old is None or old == raw or not _find(client, self.drafts, old):
                return
            for folder in [self.all_mail] if self.all_mail else [self.drafts, *self.labels]:
                _expunge(client, folder, _find(client, folder, old))

    def send(self) -> None:
        """Press Send: the message leaves Drafts (its label) and is in Sent Mail (delivery is not emulated)."""
        assert self.raw is not None, "nothing saved"
        with self.stack.client() as client:
            client.append(self.stack.profile.sent, self.raw, flags=("\\Seen",))
            _expunge(client, self.drafts, _find(client, self.drafts, self.raw))
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
