"""Policies while the daemon runs: a saved edit takes effect at the next decision; a broken one does not.

The keeper holds the last good version of every policy file. Reloading reports what changed, once each:
a file added (a new mentor), changed, broken (the last good version stays in force and the student is told
file, key and problem), renamed (another file now claims the mentor's addresses: a mentor is her addresses,
not a file name, so her history and her waiting messages follow), or removed. A removed policy whose mentor
still has messages waiting is *held*: it stays in force for them (nothing is released by a missing file)
until the file comes back or nothing of hers waits any more.

:func:`look_at` tells the daemon when to reload: it compares what the folder's files were (a stat of each), as
often as the daemon looks, which costs less than a file-watching library (its threads and modules, ~2.7 MB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UserError
from agent.rules.policy import LoadedPolicy, PolicyBook, check_unique_addresses, load_policy, policy_files

ADDED, CHANGED, BROKEN, REMOVED, RENAMED = "added", "changed", "broken", "removed", "renamed"

# What the policy folder holds: the folder itself (device, inode; None when it is not there) and each policy
# file's name, inode, size and time of the last save. Another value after a save, an added, removed or renamed
# file, a file replaced by a rename (as editors save) and the folder made again.
FolderLook = tuple[tuple[int, int] | None, frozenset[tuple[str, int, int, int, int]]]


@dataclass(frozen=True)
class Change:
    kind: str
    id: str
    path: Path
    detail: str = ""


class PolicyKeeper:
    def __init__(self, directory: Path, initial: list[LoadedPolicy]) -> None:
        self.directory = directory
        self.good: dict[str, LoadedPolicy] = {p.id: p for p in initial}
        # The text each was loaded from (a save after it is another text: loaded at the next reload)
        self.texts: dict[str, str] = {p.id: p.text or _read(p.path) for p in initial}
        self.reported: dict[Path, str] = {}
        self.held: dict[str, LoadedPolicy] = {}  # removed, still in force for the messages that wait
        self.removed: dict[str, LoadedPolicy] = {}  # removed at the last reload, for hold()

    def book(self) -> PolicyBook:
        return PolicyBook([*self.good.values(), *self.held.values()], held=self.held)

    def hold(self, policy_id: str) -> None:
        """Keep a removed policy in force: messages wait for its mentor."""
        if policy_id in self.removed:
            self.held[policy_id] = self.removed[policy_id]

    def let_go(self, in_use: set[str]) -> list[LoadedPolicy]:
        """Drop the held policies no waiting message needs any more; returns them."""
        gone = [loaded for policy_id, loaded in self.held.items() if policy_id not in in_use]
        for loaded in gone:
            del self.held[loaded.id]
        return gone

    def reload(self) -> list[Change]:
        changes: list[Change] = []
        present = {path.stem: path for path in policy_files(self.directory)} if self.directory.is_dir() else {}
        candidates: dict[str, LoadedPolicy] = {}
        for policy_id, path in present.items():
            text = _read(path)
            if text == self.texts.get(policy_id) and policy_id in self.good:
                candidates[policy_id] = self.good[policy_id]
                self.reported.pop(path, None)  # back to the good version (an undo): a later mistake is told again
                continue
            try:
                candidates[policy_id] = load_policy(path)
            except UserError as error:
                changes.extend(self._broken(policy_id, path, str(error)))
                if policy_id in self.good:
                    candidates[policy_id] = self.good[policy_id]
        # One address, one policy: an edit that claims another mentor's address is refused like any error.
        unchanged_first = sorted(candidates.values(), key=lambda p: p is not self.good.get(p.id))
        for problem in check_unique_addresses(unchanged_first):
            policy_id = Path(problem.file).stem
            changes.extend(self._broken(policy_id, Path(problem.file), str(problem)))
            if policy_id in self.good:
                candidates[policy_id] = self.good[policy_id]
            else:
                candidates.pop(policy_id, None)
        for policy_id, loaded in candidates.items():
            if loaded is self.good.get(policy_id):
                continue
            changes.append(Change(ADDED if policy_id not in self.good else CHANGED, policy_id, loaded.path))
            self.reported.pop(loaded.path, None)
            # The text it was loaded from, not read again now: a save landing in between is another text, loaded
            # at the next reload (read now, it would pass for the version in force, and never be taken in).
            self.texts[policy_id] = loaded.text
        claimed = {address: loaded for loaded in candidates.values() for address in loaded.policy.mentor.addresses}
        self.removed = {}
        for path in [path for path in self.reported if path not in present.values()]:
            del self.reported[path]  # gone: the same mistake in a file put back later is told again
        for policy_id, loaded in self.good.items():
            if policy_id not in present:
                self.texts.pop(policy_id, None)
                heir = next((claimed[a] for a in loaded.policy.mentor.addresses if a in claimed), None)
                if heir is not None:
                    changes.append(Change(RENAMED, policy_id, loaded.path, str(heir.path)))
                else:
                    changes.append(Change(REMOVED, policy_id, loaded.path, loaded.name))
                    self.removed[policy_id] = loaded
        # A held policy ends when its file is back, or another file claims the mentor's addresses.
        for policy_id, loaded in list(self.held.items()):
            if policy_id in candidates or any(a in claimed for a in loaded.policy.mentor.addresses):
                del self.held[policy_id]
        self.good = candidates
        return changes

    def _broken(self, policy_id: str, path: Path, detail: str) -> list[Change]:
        if self.reported.get(path) == detail:
            return []  # told once already
        self.reported[path] = detail
        return [Change(BROKEN, policy_id, path, detail)]


def look_at(directory: Path) -> FolderLook:
    """What the policy folder holds now (the files :func:`policy_files` loads), to compare with the last look."""
    try:
        folder = directory.stat()
        entries = list(os.scandir(directory))
    except OSError:
        return None, frozenset()
    files = set()
    for entry in entries:
        if entry.name.endswith(".toml") and not entry.name.startswith("."):
            try:
                found = entry.stat()  # follows a link, as loading does
            except OSError:
                continue  # removed meanwhile
            # ctime too: a tool that puts the mtime back (cp --preserve, rsync -t) cannot put it back
            files.add((entry.name, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns))
    return (folder.st_dev, folder.st_ino), frozenset(files)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
