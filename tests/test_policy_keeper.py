"""Live policy edits: good edits apply, broken ones keep the last good version and are reported once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.config.policy_keeper import ADDED, BROKEN, CHANGED, REMOVED, PolicyKeeper, look_at
from agent.rules.policy import LoadedPolicy, load_policies, load_policy

ROOT = Path(__file__).parent.parent


def keeper(tmp_path: Path) -> PolicyKeeper:
    for name in ("rivera.toml", "okafor.toml"):
        shutil.copy(ROOT / "policies" / name, tmp_path / name)
    return PolicyKeeper(tmp_path, load_policies(tmp_path))


def test_a_good_edit_applies(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    path.write_text(path.read_text().replace("max_per_day = 1 ", "max_per_day = 2 "))
    changes = k.reload()
    assert [(c.kind, c.id) for c in changes] == [(CHANGED, "rivera")]
    assert k.book().by_id["rivera"].policy.email.max_per_day == 2


def test_a_broken_edit_keeps_the_last_good_policy_and_is_reported_once(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    path.write_text(path.read_text().replace("max_per_day = 1 ", "max_per_dya = 2 "))
    changes = k.reload()
    assert [c.kind for c in changes] == [BROKEN]
    assert "email.max_per_dya: unknown key" in changes[0].detail and "rivera.toml" in changes[0].detail
    assert k.book().by_id["rivera"].policy.email.max_per_day == 1
    assert k.reload() == []  # not told twice


def test_new_and_removed_files(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    (tmp_path / "okafor.toml").unlink()
    text = (ROOT / "policies/rivera.toml").read_text().replace("arivera@hospital", "lee@clinic")
    (tmp_path / "lee.toml").write_text(text)
    kinds = {(c.kind, c.id) for c in k.reload()}
    assert kinds == {(ADDED, "lee"), (REMOVED, "okafor")}
    assert set(k.book().by_id) == {"rivera", "lee"}


def test_an_edit_that_steals_another_mentors_address_is_refused(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    path = tmp_path / "okafor.toml"
    path.write_text(path.read_text().replace('"c.okafor@nhs.example.uk"', '"arivera@hospital.example.org"'))
    changes = k.reload()
    assert [c.kind for c in changes] == [BROKEN] and "already claimed" in changes[0].detail
    assert k.book().for_address("arivera@hospital.example.org").id == "rivera"  # type: ignore[union-attr]


def test_a_renamed_file_is_the_same_mentor_not_a_removal(tmp_path: Path) -> None:
    from agent.config.policy_keeper import RENAMED

    k = keeper(tmp_path)
    (tmp_path / "rivera.toml").rename(tmp_path / "dr-rivera.toml")
    kinds = {(c.kind, c.id) for c in k.reload()}
    assert kinds == {(ADDED, "dr-rivera"), (RENAMED, "rivera")}
    assert k.book().for_address("arivera@hospital.example.org").id == "dr-rivera"  # type: ignore[union-attr]


def test_a_removed_policy_held_for_waiting_mail_stays_in_force_until_let_go_or_restored(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    text = (tmp_path / "okafor.toml").read_text()
    (tmp_path / "okafor.toml").unlink()
    assert [(c.kind, c.id) for c in k.reload()] == [(REMOVED, "okafor")]
    k.hold("okafor")
    assert k.book().for_address("c.okafor@nhs.example.uk").id == "okafor"  # type: ignore[union-attr]
    assert k.let_go({"okafor"}) == [] and "okafor" in k.book().by_id
    (tmp_path / "chidi.toml").write_text(text)  # back, under another name: the new file takes over
    k.reload()
    assert set(k.book().by_id) == {"rivera", "chidi"} and not k.held
    (tmp_path / "chidi.toml").unlink()
    k.reload()
    k.hold("chidi")
    assert [p.id for p in k.let_go(set())] == ["chidi"] and set(k.book().by_id) == {"rivera"}


def test_the_folder_look_changes_with_each_kind_of_save_and_only_for_policy_files(tmp_path: Path) -> None:
    keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    looks = [look_at(tmp_path)]
    assert looks[0] == look_at(tmp_path)
    (tmp_path / ".rivera.toml.swp").write_text("an editor's own file")
    (tmp_path / "notes.txt").write_text("not a policy")
    assert look_at(tmp_path) == looks[-1]
    stat = path.stat()
    path.write_text(path.read_text().replace("max_per_day = 1 ", "max_per_day = 2 "))  # the same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    looks.append(look_at(tmp_path))
    replacement = tmp_path / "rivera.toml.new"
    replacement.write_text(path.read_text())
    os.utime(replacement, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    replacement.replace(path)  # saved by a rename: another inode, the same size and time
    looks.append(look_at(tmp_path))
    path.rename(tmp_path / "ana-rivera.toml")
    looks.append(look_at(tmp_path))
    shutil.rmtree(tmp_path)
    looks.append(look_at(tmp_path))
    assert looks[-1] == (None, frozenset())
    tmp_path.mkdir()
    looks.append(look_at(tmp_path))  # made again, empty: the folder itself is another
    assert len(set(looks)) == len(looks)


def test_an_edit_that_keeps_size_and_time_is_still_seen(tmp_path: Path) -> None:
    """Found by the tester (issue 21): `cp --preserve=timestamps`, `rsync -t` or a tool that puts the time back
    wrote a new window of the same length; the look keyed on size and mtime never saw it, and mail went out
    outside the new window. The change time cannot be put back from user space."""
    keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    before = look_at(tmp_path)
    stat = path.stat()
    path.write_text(path.read_text().replace("max_per_day = 1 ", "max_per_day = 2 "))  # the same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time, put back
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert look_at(tmp_path) != before


def test_the_same_mistake_made_again_after_an_undo_is_told_again(tmp_path: Path) -> None:
    """A hostile hunt: an undo back to the good text kept the old report, and the same slip later was never told."""
    k = keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    good = path.read_text()
    broken = good.replace("max_per_day = 1 ", "max_per_dya = 1 ")
    path.write_text(broken)
    assert [c.kind for c in k.reload()] == [BROKEN]
    path.write_text(good)  # her editor's undo: the very text in force
    assert k.reload() == []
    path.write_text(broken)  # days later, the same slip
    assert [c.kind for c in k.reload()] == [BROKEN]


def test_a_save_that_lands_while_the_file_is_loaded_is_taken_in_at_the_next_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile hunt: the text was read again after loading, so a save in between passed for the version in force."""
    import agent.config.policy_keeper as policy_keeper

    k = keeper(tmp_path)
    path = tmp_path / "rivera.toml"
    first = path.read_text().replace("max_per_day = 1 ", "max_per_day = 2 ")
    second = path.read_text().replace("max_per_day = 1 ", "max_per_day = 3 ")
    path.write_text(first)
    load = load_policy

    def loaded_then_saved_again(at: Path) -> LoadedPolicy:
        loaded = load(at)
        at.write_text(second)  # her editor's second save, a moment later
        return loaded

    monkeypatch.setattr(policy_keeper, "load_policy", loaded_then_saved_again)
    k.reload()
    monkeypatch.setattr(policy_keeper, "load_policy", load)
    assert [(c.kind, c.id) for c in k.reload()] == [(CHANGED, "rivera")]
    assert k.book().by_id["rivera"].policy.email.max_per_day == 3
