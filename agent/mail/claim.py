"""Moving messages between folders so that of several agents exactly one moves each: the claim protocol.

:class:`Mailbox` is the command connection (:class:`agent.mail.client.Connection`) with ``move``,
``move_many`` and ``discard_many``. Dovecot's MOVE is not atomic between sessions, so where the server offers
CONDSTORE and keeps custom keywords, a message is first claimed with a conditional STORE of this agent's own
keyword, then moved; the server's UID map (COPYUID) is checked against the Message-IDs read back. What the
server keeps is decided by looking (PERMANENTFLAGS, a STORE read back), never by its name.

Why one module of a little over 400 lines: the protocol is one algorithm (claim, read back, move, check the UID
map, fall back to COPY), each step guarding the next; split, its invariants would be spread over files.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import logging
import os
import ssl
import time
from collections.abc import Sequence
from typing import Any

from imapclient.imapclient import DELETED, TRASH

from agent.config.settings import Imap
from agent.mail.client import FETCH_CHUNK, Connection
from agent.mail.port import HELD_KEYWORD
from agent.mail.pulse import Pulse
from agent.mail.session import Login, MailboxError, MessageGone, refused
from agent.mail.uidsets import copyuid, expand, identities_in, text_of, uid_set
from agent.rules.envelope import parse_envelope

CLAIM_KEYWORD = "$MentorAgentClaim"  # + an agent's id: set (conditionally) on a message while that agent moves it
STALE_CLAIM = 60.0  # seconds: a claim keyword still there this long after we first saw it was abandoned
# Times a MOVE/COPY is given, and a claim read back, while another session keeps expunging under it.
EXPUNGED_UNDER_US = 3
# What a message is known by when a UID map is checked: its Message-ID (the ledger's key for it).
_ID_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
log = logging.getLogger("mentor_agent.mailbox")


class Mailbox(Connection):
    """The command connection that also moves messages, claiming them first where the server allows."""

    def __init__(
        self,
        imap: Imap,
        login: Login,
        *,
        ssl_context: ssl.SSLContext | None = None,
        agent_id: str | None = None,
        pulse: Pulse | None = None,
    ) -> None:
        super().__init__(imap, login, ssl_context=ssl_context, pulse=pulse)
        # Each agent claims (and marks what it holds) with its own keyword, so that after a restart it recognises a
        # claim it made itself (killed between STORE and MOVE) and goes on at once; the daemon passes its ledger's id.
        own = agent_id or os.urandom(4).hex()
        self.claim_keyword = CLAIM_KEYWORD + own
        self.held_keyword = HELD_KEYWORD + own  # agent.mail.port.MailboxPort.held_keyword
        self.other_agents: set[str] = set()  # agent.mail.port.MailboxPort.other_agents
        self.force_copy_fallback = False  # tests set this to exercise COPY + STORE + UID EXPUNGE
        self._claims_seen: dict[tuple[str, int], float] = {}  # (folder, UID) -> when first seen claimed by others
        # Decided by looking, never by the server's name: whether CONDSTORE works when used (iCloud advertises
        # it and refuses it), and per folder whether a custom keyword is kept (PERMANENTFLAGS without \*, or
        # a STORE that the server accepts and then forgets, as at Microsoft 365).
        self._condstore_works = True
        self._keywords_kept: dict[str, bool] = {}
        self.remapped = 0  # UID maps (COPYUID) found wrong and rebuilt by Message-ID, this connection
        self._trash: str | None = None  # Gmail's Trash folder, once looked up ("" where there is none)

    def connect(self) -> None:
        super().connect()
        self._condstore_works = True
        self._keywords_kept = {}

    def _selected_now(self, folder: str, response: dict[bytes, Any]) -> None:
        permanent = response.get(b"PERMANENTFLAGS")
        if permanent is not None and folder not in self._keywords_kept:
            # RFC 3501: \* means new keywords can be kept; without PERMANENTFLAGS every flag is permanent.
            self._keywords_kept[folder] = any(text_of(f) in ("\\*", self.claim_keyword) for f in permanent)

    @property
    def uses_claims(self) -> bool:
        """Whether a claim keyword is usable at all here (CONDSTORE advertised and not refused)."""
        return self._has("CONDSTORE") and self._condstore_works

    def modseqs(self, folder: str, uids: Sequence[int]) -> dict[int, int] | None:
        """{UID: MODSEQ} of those still in ``folder``; None where CONDSTORE is missing or refused when used."""
        if not self.uses_claims:
            return None
        self._select(folder)
        found: dict[int, int] = {}
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[start : start + FETCH_CHUNK]
            try:
                data = self._run(f"UID FETCH MODSEQ in {folder!r}", functools.partial(self._fetch, chunk, ["MODSEQ"]))
            except MailboxError as error:
                if self._client is None or isinstance(error, MessageGone):
                    raise  # the connection broke, or a message was expunged: not an answer about CONDSTORE
                self._condstore_works = False
                return None
            found |= {
                int(uid): int(item[b"MODSEQ"][0])
                for uid, item in data.items()
                if int(uid) in chunk and b"MODSEQ" in item
            }
        return found

    def _claims_work(self, folder: str) -> bool:
        return self.uses_claims and self._keywords_kept.get(folder, True)

    def move(self, folder: str, uid: int, target: str) -> int | None:
        """Move one message; its UID in ``target`` where the server says (COPYUID), else None.

        Raises MessageGone when the UID is no longer in ``folder`` or another agent claimed it first.
        """
        moved = self.move_many(folder, [uid], target)
        if uid not in moved:
            raise MessageGone(f"UID {uid} is no longer in {folder!r} (or another agent claimed it)")
        return moved[uid]

    def move_many(self, folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        """Move messages in one command; {source UID: UID in ``target`` (None if it cannot be told)}.

        A UID missing from the answer was not moved: it is gone, or another agent claimed it first.
        Dovecot's MOVE is not atomic between sessions (two racing MOVEs both answer OK and leave two
        copies), so with ``claim``, where the server offers CONDSTORE and keeps custom keywords, the messages
        are first claimed with one conditional STORE (UNCHANGEDSINCE) of a private keyword: of several
        agents, exactly one succeeds for each message. ``claim=False`` is for the agent's own Sending folder,
        which no student edits. Where keywords or CONDSTORE are missing (Microsoft 365, Yahoo, iCloud) the
        messages are moved without a claim: those servers' MOVE does not leave two copies.

        The server's UID map (COPYUID) is never taken on trust: the destination's Message-IDs are read back
        and a map in the wrong order (Yahoo, MailKit #1405) is rebuilt by Message-ID.
        Without MOVE (iCloud): COPY, check the copies, STORE \\Deleted, UID EXPUNGE those UIDs — never a
        bare EXPUNGE.
        """
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        self._select(folder)
        present, identities = self._present(folder, wanted)
        ours: list[int] | None = None
        # Into Scheduled: marked held before the move, with any claim: never seen there unmarked (strangers.py)
        held = [self.held_keyword] if target == self.held_folder else []
        if claim and self._claims_work(folder):
            ours = self._claim(folder, present, held)
        if ours is None:  # no claim here: keywords or CONDSTORE are missing
            ours = sorted(present)
            with contextlib.suppress(MailboxError):  # a mark only (none without ``held``, or where not kept)
                self.add_flags_many(folder, ours, held if self._keywords_kept.get(folder, True) else [])
        if not ours:
            return {}
        if self.has_move and not self.force_copy_fallback:
            ours, mapping = self._transfer("MOVE", folder, ours, target)
            moved = self._checked_map(folder, target, ours, mapping, identities)
        else:
            ours, mapping = self._transfer("COPY", folder, ours, target)
            moved = self._checked_map(folder, target, ours, mapping, identities)
            copied = sorted(moved)
            if copied:  # only what is certainly in the target leaves the source
                self._select(folder)
                marks = uid_set(copied)
                where = f"{len(copied)} message(s) {folder!r} -> {target!r}"
                self._run(f"UID STORE {where} +\\Deleted", lambda: self.client.add_flags(marks, [DELETED], silent=True))
                self._expunge(copied)
        new_uids = [new for new in moved.values() if new is not None]
        if claim and self._claims_work(folder) and new_uids:
            with contextlib.suppress(MailboxError):  # cosmetic: the move itself has succeeded
                self.remove_flags_many(target, new_uids, [self.claim_keyword])
        return moved

    def _transfer(self, verb: str, folder: str, uids: list[int], target: str) -> tuple[list[int], dict[int, int]]:
        """UID MOVE (or COPY) the messages; (the UIDs given in the command that succeeded, the server's UID map).

        A message another session expunged since we looked makes Dovecot refuse the whole command with
        ``NO [EXPUNGEISSUED]`` (RFC 5530), having moved none: MessageGone. Then, after a NOOP (which tells us
        of the expunges), the command is given again for the messages still here.
        """
        untagged = self.client._imap.untagged_responses
        command = self.client.move if verb == "MOVE" else self.client.copy
        for attempt in range(1, EXPUNGED_UNDER_US + 1):
            untagged.pop("COPYUID", None)
            where = f"{len(uids)} message(s) {folder!r} -> {target!r}"
            try:
                self._run(f"UID {verb} {where}", functools.partial(command, uid_set(uids), target))
            except MessageGone:
                if attempt == EXPUNGED_UNDER_US:
                    raise
                log.info("UID %s %s: another session expunged some of them; moving the others", verb, where)
                self._run("NOOP", self.client.noop)
                uids = sorted(self._flags_now(folder, uids))
                if not uids:
                    return [], {}
                continue
            return uids, copyuid(untagged.pop("COPYUID", None))
        raise AssertionError("unreachable")

    def _flags_now(self, folder: str, uids: Sequence[int]) -> dict[int, set[str]]:
        """{UID: flags} of the messages still in ``folder``, read after a NOOP, so that none another session
        expunged is among them: a FETCH that ends in ``[EXPUNGEISSUED]`` (RFC 5530) may have shown a message
        expunged meanwhile with no flags at all, so it is read again. Left empty where expunges never stop."""
        imap = self.client._imap
        wanted = sorted(set(uids))
        for _ in range(EXPUNGED_UNDER_US):
            found: dict[int, set[str]] = {}
            imap.untagged_responses.pop("EXPUNGEISSUED", None)
            for start in range(0, len(wanted), FETCH_CHUNK):
                chunk = wanted[start : start + FETCH_CHUNK]
                data = self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS"]))
                for uid in chunk:
                    if b"FLAGS" in data.get(uid, {}):
                        found[uid] = {text_of(f) for f in data[uid][b"FLAGS"]}
            if imap.untagged_responses.pop("EXPUNGEISSUED", None) is None:
                return found
            self._run("NOOP", self.client.noop)
        return {}

    def _checked_map(
        self, folder: str, target: str, ours: list[int], mapping: dict[int, int], identities: dict[int, str]
    ) -> dict[int, int | None]:
        """{source UID: target UID} for the messages that reached ``target``, checked against Message-ID.

        A server's COPYUID can pair sources and destinations in the wrong order (Yahoo): every pair is read
        back, and a wrong map is rebuilt from the destination's Message-IDs (the ledger's key, a hash of the
        header block for a message without one). A message whose place cannot be told maps to None (the
        caller looks it up by its key). Without UIDPLUS nothing is known: every one maps to None.
        """
        if not mapping:
            if self.has_uidplus:
                return {}  # the server moved nothing: every one of them was gone
            return dict.fromkeys(ours)
        pairs = {uid: mapping[uid] for uid in ours if uid in mapping}
        found = self._identities(target, sorted(set(pairs.values())))
        if all(found.get(new) == identities.get(old) for old, new in pairs.items()):
            return dict(pairs)
        self.remapped += 1
        log.warning(
            "the server's UID map for %d message(s) %r -> %r does not match their Message-IDs; rebuilt by Message-ID",
            len(pairs),
            folder,
            target,
        )
        at: dict[str, list[int]] = {}
        for new, identity in found.items():
            at.setdefault(identity, []).append(new)
        rebuilt: dict[int, int | None] = {}
        for old in pairs:
            places = at.get(identities.get(old, ""), [])
            rebuilt[old] = places[0] if len(places) == 1 else None
        return rebuilt

    def _identities(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        """{UID: Message-ID, or the ledger's hash key for a message without one} in ``folder``."""
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        self._select(folder)
        found: dict[int, str] = {}
        for start in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[start : start + FETCH_CHUNK]
            data = self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, [_ID_ITEM]))
            found.update(identities_in(data, set(chunk)))
        return self._hash_missing(folder, wanted, found)

    def _hash_missing(self, folder: str, wanted: Sequence[int], found: dict[int, str]) -> dict[int, str]:
        """Fill in the hash key (as the ledger makes it) for messages that have no Message-ID."""
        missing = [uid for uid in wanted if uid not in found]
        if missing:
            for info in self.headers(folder, missing):
                found[info.uid] = parse_envelope(info.headers).key
        return found

    def _present(self, folder: str, uids: list[int]) -> tuple[dict[int, int | None], dict[int, str]]:
        """{UID: MODSEQ (None without CONDSTORE)} of the messages still in the folder and not \\Deleted, and
        {UID: identity} of the same (Message-ID, or the ledger's hash key), to check a UID map against."""
        present: dict[int, int | None] = {}
        identities: dict[int, str] = {}
        stale: list[int] = []
        abandoned: set[str] = set()
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            asked = set(chunk)
            data = self._fetch_present(folder, chunk)
            condstore = self.uses_claims
            identities.update(identities_in(data, asked))
            for uid, item in data.items():
                flags = item.get(b"FLAGS")
                if flags is None or int(uid) not in asked or DELETED in flags:
                    continue  # gone, deleted, or an unsolicited FETCH about something else
                claims = {text_of(f) for f in flags if text_of(f).lower().startswith(CLAIM_KEYWORD.lower())}
                foreign = claims - {self.claim_keyword}
                self.other_agents |= {claim[len(CLAIM_KEYWORD) :].lower() for claim in foreign}
                if foreign:
                    first = self._claims_seen.setdefault((folder, int(uid)), time.monotonic())
                    if time.monotonic() - first >= STALE_CLAIM:
                        stale.append(int(uid))
                        abandoned |= foreign
                    continue  # being moved by another agent right now
                self._claims_seen.pop((folder, int(uid)), None)
                present[int(uid)] = int(item[b"MODSEQ"][0]) if condstore and b"MODSEQ" in item else None
        if stale:
            # A claim nobody finished (its agent died between STORE and MOVE): free the message for next time.
            self.remove_flags_many(folder, stale, sorted(abandoned))
            for uid in stale:
                self._claims_seen.pop((folder, uid), None)
        identities = {uid: identity for uid, identity in identities.items() if uid in present}
        return present, self._hash_missing(folder, sorted(present), identities)

    def _fetch_present(self, folder: str, chunk: list[int]) -> dict[int, dict[bytes, Any]]:
        if not self.uses_claims:
            return self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", _ID_ITEM]))
        try:
            return self._run(
                f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", "MODSEQ", _ID_ITEM])
            )
        except MailboxError as error:
            if self._client is None or isinstance(error, MessageGone):
                raise  # the connection broke, or a message was expunged: not an answer about CONDSTORE
            # CONDSTORE advertised but refused when used (iCloud refuses SELECT ... (CONDSTORE), MailKit #970).
            log.info("the server refused MODSEQ although it advertises CONDSTORE: moving without claims")
            self._condstore_works = False
            return self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", _ID_ITEM]))

    def _claim(self, folder: str, present: dict[int, int | None], marks: Sequence[str] = ()) -> list[int] | None:
        """Claim the messages for this agent; the UIDs it may move (no other agent will). None when claims
        turn out not to work here (the conditional STORE refused, or the keyword not kept): move unclaimed.
        ``marks``: keywords stored with the claim (one STORE), left on a message given up (another agent's may be).

        Two steps. A conditional STORE of this agent's keyword (UNCHANGEDSINCE the highest MODSEQ seen; RFC
        7162 names in MODIFIED whatever changed since), then, after a NOOP, a FETCH of the flags: a message
        that shows another agent's keyword too is given up (and our keyword taken off). Dovecot can let two
        racing conditional STOREs both succeed, but of two agents that each STORE and then read, at least one
        reads the other's keyword, so at most one goes on to MOVE.
        """
        if not present:
            return []
        imap = self.client._imap
        for stale in ("MODIFIED", "FETCH"):
            imap.untagged_responses.pop(stale, None)
        # Every change made after our FETCH has a MODSEQ above the highest we saw, so one bound serves all.
        bound = max(m or 0 for m in present.values())
        wanted = sorted(present)
        keywords = " ".join([self.claim_keyword, *marks])

        def store() -> list[int]:
            typ, said = imap.uid(
                "STORE", uid_set(wanted), f"(UNCHANGEDSINCE {bound})", "+FLAGS.SILENT", f"({keywords})"
            )
            imap.untagged_responses.pop("FETCH", None)
            if typ != "OK":
                words = b" ".join(part for part in said if isinstance(part, bytes)).decode(errors="replace")
                raise refused("UID STORE (claim)", imaplib.IMAP4.error(words or "refused"))
            modified: set[int] = set()
            for code in imap.untagged_responses.pop("MODIFIED", None) or ():
                modified |= expand(code)
            return [uid for uid in wanted if uid not in modified]

        try:
            stored = self._run(f"UID STORE {len(wanted)} message(s) (claim)", store)
        except MessageGone:
            # Another session expunged some of them under the STORE ([EXPUNGEISSUED]): claim nothing now; those
            # still here are taken at the next look (a claim of ours that landed is recognised as ours then).
            self._run("NOOP", self.client.noop)
            return []
        except MailboxError:
            if self._client is None:
                raise
            log.info("the server refused a conditional STORE (CONDSTORE): moving without claims")
            self._condstore_works = False
            return None
        if not stored:
            return []
        self._run("NOOP", self.client.noop)  # see every change committed before this point
        read = self._flags_now(folder, stored)
        kept: list[int] = []
        for uid, flags in sorted(read.items()):
            ours = self.claim_keyword in flags and "\\Deleted" not in flags
            if ours and not any(f.lower().startswith(CLAIM_KEYWORD.lower()) and f != self.claim_keyword for f in flags):
                kept.append(uid)
        seen: set[str] = set().union(*read.values())
        if read and not any(flag.lower().startswith(CLAIM_KEYWORD.lower()) for flag in seen):
            # The STORE was accepted, yet no message still here shows any claim: this folder does not keep custom
            # keywords (Microsoft 365 drops them silently, MailKit #702). Read back, not guessed: move without
            # claims. Only messages read back count: one another agent moved meanwhile (the race this agent
            # lost) shows nothing, and taking that for a server that drops keywords once made the loser move
            # every later message unclaimed, so that both agents moved (and sent) the next one.
            log.info("%r does not keep custom keywords: moving without claims", folder)
            self._keywords_kept[folder] = False
            return None
        given_up = sorted(set(stored) - set(kept))
        if given_up:
            with contextlib.suppress(MailboxError):
                self.remove_flags_many(folder, given_up, [self.claim_keyword])
        return kept

    def discard_many(self, folder: str, uids: Sequence[int]) -> None:
        """Remove the agent's own copies (e.g. from Sending once the provider filed the sent message in Sent).

        At Gmail (X-GM-EXT-1) folders are labels: an EXPUNGE only takes the label off and the message stays in
        All Mail, a stray copy with no label. There it is moved to the Trash folder, which is how Gmail deletes.
        """
        if self._has("X-GM-EXT-1"):
            if self._trash is None:
                self._trash = self._run("LIST", lambda: self.client.find_special_folder(TRASH)) or ""
            if self._trash:
                self.move_many(folder, uids, self._trash, claim=False)
                return
        self.delete_many(folder, uids)
