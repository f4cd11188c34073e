"""The ledger's record of proposals and answers (agent/store/agreements.py), and `agree`'s own checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from agent.cli.main import main
from agent.reconcile.agreement import apply_answer
from agent.rules.policy import load_policy
from agent.store.agreements import Agreements
from agent.store.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
MENTOR = ("arivera@hospital.example.org",)
T0 = datetime(2026, 11, 23, 14, tzinfo=UTC)


def test_an_answer_is_recorded_once_and_waits_to_be_applied(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    store = Agreements(ledger)
    store.propose("<p1@x>", "rivera", 1, T0, [{"number": 1, "path": "email.max_per_week", "text": "3"}])
    assert list(store.waiting()) == ["<p1@x>"] and store.to_apply() == []
    first = store.answered(
        "<p1@x>", answer_id="<a1@y>", at=T0 + timedelta(hours=5), outcome="changed",
        changes={"email.max_per_week": 2}, said=[[1, "E-mails", "3", "2"]],
    )  # fmt: skip
    again = store.answered("<p1@x>", answer_id="<a2@y>", at=T0, outcome="accepted", changes={}, said=[])
    assert (first, again) == (True, False)
    assert store.waiting() == {}
    [ready] = store.to_apply("rivera")
    assert (ready.answer_id, ready.changes, ready.version) == ("<a1@y>", {"email.max_per_week": 2}, 1)
    store.applied("<p1@x>", T0 + timedelta(days=1))
    assert store.to_apply() == [] and Agreements(ledger).latest("rivera") is not None
    ledger.close()


def test_after_an_answer_that_could_not_be_read_her_next_one_counts(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    store = Agreements(ledger)
    store.propose("<p1@x>", "rivera", 1, T0, [])
    assert store.answered("<p1@x>", answer_id="<a1@y>", at=T0, outcome="unclear", changes={}, said=[])
    assert list(store.waiting()) == ["<p1@x>"] and store.to_apply() == []
    assert not store.answered("<p1@x>", answer_id="<a1@y>", at=T0, outcome="unclear", changes={}, said=[])
    assert store.answered("<p1@x>", answer_id="<a2@y>", at=T0, outcome="accepted", changes={}, said=[])
    assert store.waiting() == {} and [p.answer_id for p in store.to_apply()] == ["<a2@y>"]
    ledger.close()


def test_a_renamed_policy_file_keeps_its_proposal_and_answer(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ledger.bind({"rivera": MENTOR})  # as the daemon learns each policy's addresses
    store = Agreements(ledger)
    store.propose("<p1@x>", "rivera", 1, T0, [])
    store.answered("<p1@x>", answer_id="<a1@y>", at=T0, outcome="changed", changes={"email.max_per_week": 2}, said=[])
    renamed = tmp_path / "dr-ana-rivera.toml"
    renamed.write_text((ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8"), encoding="utf-8")
    applied = apply_answer(ledger, load_policy(renamed), ZoneInfo("America/Chicago"), T0 + timedelta(hours=1))
    assert (applied.version, applied.agreed_on) == (1, date(2026, 11, 23))
    assert load_policy(renamed).policy.email.max_per_week == 2
    ledger.close()


def test_answer_times_run_from_what_she_received_to_her_reply(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    for number, hours in enumerate((3, 30, 100)):
        at = T0 + timedelta(days=7 * number)
        ledger.add_item("rivera", f"<m{number}@x>", at, [f"<m{number}@x>"], addresses=MENTOR)
        ledger.add_reply("rivera", f"<r{number}@y>", at + timedelta(hours=hours), f"<m{number}@x>", addresses=MENTOR)
    store = Agreements(ledger)
    assert store.answer_times("rivera", T0, T0 + timedelta(days=30), MENTOR) == [3.0, 30.0, 100.0]
    assert store.answer_times("rivera", T0 + timedelta(days=10), T0 + timedelta(days=30), MENTOR) == [100.0]
    ledger.close()


def test_agree_takes_one_action_at_a_time_and_print_needs_no_account() -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["agree", "rivera", "--send", "--apply"])
    assert both.exit_code == 1 and "one at a time" in both.output
    printed = runner.invoke(main, ["agree", str(ROOT / "policies" / "rivera.toml"), "--print", "--student-name", "Sam"])
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith('To: "Dr. Ana Rivera" <arivera@hospital.example.org>\nSubject: How we keep')
    assert printed.output.rstrip().endswith("With many thanks,\nSam")


def test_a_later_answer_replaces_the_recorded_one_until_it_is_applied(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    store = Agreements(ledger)
    store.propose("<p1@x>", "rivera", 1, T0, [])
    assert store.answered("<p1@x>", answer_id="<a1@y>", at=T0, outcome="accepted", changes={}, said=[])
    later = T0 + timedelta(hours=1)
    assert store.answered("<p1@x>", answer_id="<a2@y>", at=later, outcome="unclear", changes={}, said=[])
    assert store.to_apply() == [] and list(store.listening()) == ["<p1@x>"]
    assert store.first_reading("<a2@y>", "<p1@x>", later) and not store.first_reading("<a2@y>", "<p1@x>", later)
    assert store.answered("<p1@x>", answer_id="<a3@y>", at=later, outcome="accepted", changes={}, said=[])
    store.applied("<p1@x>", later)
    assert not store.answered("<p1@x>", answer_id="<a4@y>", at=later, outcome="unclear", changes={}, said=[])
    assert [p.answer_id for p in store.all()] == ["<a3@y>"]
    ledger.close()
