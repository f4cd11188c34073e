"""Step 5 of `mentor-agent setup`: the first mentor's policy, from a few plain answers.

Every answer is checked before anything is written: answers given as flags before any question
(:func:`given_policy_problems`), each typed answer as it is typed, and the whole policy by the policy rules in a
scratch folder (:func:`ask_policy`); only then is it written (:func:`write_policy`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.cli.answer_checks import address_problem, bare_address, window_problem, zone_problem
from agent.cli.prompts import Asker
from agent.cli.setup_files import as_written, commit, draft_beside, may_replace
from agent.config.writer import MentorAnswers, policy_file_names, render_policy
from agent.errors import UserError
from agent.rules.addresses import normal_address
from agent.rules.policy import LoadedPolicy, check_unique_addresses, load_policy, policy_files


@dataclass(frozen=True)
class PolicyDraft:
    """A first policy, every answer checked (by the policy rules too), not yet written."""

    target: Path
    text: str


def ask_policy(ask: Asker, o: dict[str, Any], directory: Path, student_zone: str) -> PolicyDraft | None:
    """Step 5's questions: the first mentor's policy from a few plain answers, checked as ``check`` checks a
    policy; nothing is written (without a terminal this runs before the config is written, so a bad answer
    leaves no file behind)."""
    others = policy_files(directory) if directory.is_dir() else []
    # Without a terminal a policy is written only when asked for (--mentor-name): there is no default mentor.
    wanted = o["mentor_name"] is not None or (
        ask.interactive and ask.confirm("--mentor-name", None, "Write the policy for a mentor now?", not others)
    )
    if not wanted:
        mentor_flags = {
            "--mentor-address": o["mentor_address"],
            "--mentor-timezone": o["mentor_timezone"],
            "--per-day": o["per_day"],
            "--per-week": o["per_week"],
            "--window": o["window"],
        }
        answered = [flag for flag, value in mentor_flags.items() if value not in (None, ())]
        if answered and not ask.interactive:  # her answers are for a mentor: never dropped without a word
            ask.fail("--mentor-name", f"needed with {', '.join(answered)}: the mentor whose policy they are for")
        if not others:
            ask.say(
                f"No policy yet: `run` waits for one in {directory}. Add it with `mentor-agent setup --mentor-name "
                "NAME`, or write one there (see docs/policies.md)."
            )
        return None
    if ask.interactive:
        ask.say("A few questions about what you agreed with this mentor (all in the mentor's own time zone):")
    rest: dict[Path, LoadedPolicy] = {}
    for path in others:
        with contextlib.suppress(UserError):  # `check` names what is wrong in the others
            rest[path] = load_policy(path)
    name = ask.text("--mentor-name", o["mentor_name"], "Mentor's name (e.g. Dr. Ana Rivera)", None)
    target = _policy_target(directory, name, rest)
    owners = {normal_address(a): p for p in rest.values() if p.path != target for a in p.policy.mentor.addresses}

    def unclaimed(value: str) -> str | None:
        owner = owners.get(normal_address(bare_address(value)))
        if owner is not None:
            return f"{value} is already {owner.name}'s ({owner.path.name}); one address, one policy"
        return address_problem(value)

    given = ask.values("--mentor-address", o["mentor_address"], "Mentor's address(es)", None, unclaimed)
    addresses = tuple(bare_address(value) for value in given)
    zone = ask.text("--mentor-timezone", o["mentor_timezone"], "Mentor's time zone", student_zone, zone_problem)
    per_day = ask.number("--per-day", o["per_day"], "At most how many messages a day", 1)
    per_week = ask.number(
        "--per-week", o["per_week"], "At most how many a week", max(3, per_day), per_day, "--per-day",
        "a week holds at least the messages of one day",
    )  # fmt: skip
    windows = ask.values(
        "--window", o["window"], "When may mail arrive (e.g. Mon-Fri 08:00-17:00; several with ';')",
        ["Mon-Fri 08:00-17:00"], window_problem, separator=";",
    )  # fmt: skip
    answers = MentorAnswers(name, addresses, zone, per_day, per_week, windows)
    text = render_policy(answers, today=datetime.now().astimezone().date().isoformat())
    with tempfile.TemporaryDirectory(prefix="mentor-agent-setup-") as scratch:  # not even its folder, yet
        draft = Path(scratch) / target.name
        draft.write_text(text, encoding="utf-8")
        try:
            loaded = load_policy(draft)
        except UserError as error:
            raise as_written(error, draft, target) from None
        kept = [policy for path, policy in rest.items() if path != target]
        clash = check_unique_addresses([*kept, LoadedPolicy(target.stem, draft, loaded.policy)])
        if clash:
            raise as_written(UserError(clash), draft, target)
    return PolicyDraft(target, text)


def write_policy(ask: Asker, policy: PolicyDraft, *, force: bool) -> Path | None:
    """Step 5's file: shown as changes when one is there, and written."""
    target, text = policy.target, policy.text
    with draft_beside(target, text) as draft:
        if not may_replace(ask, target, text, force):
            return None
        commit(draft, target)
    ask.say(f"Wrote {target}: try it on a sample week with `mentor-agent simulate {target}`.")
    return target


def _policy_target(directory: Path, name: str, rest: dict[Path, LoadedPolicy]) -> Path:
    """The file for this mentor's policy: their own when there is one (a re-run: shown as changes), else a
    name no other mentor's policy has (Dr. Luis Rivera beside Dr. Ana Rivera's rivera.toml: luis-rivera.toml)."""
    candidates = [directory / file for file in policy_file_names(name)]
    for path in candidates:
        if path.exists() and path in rest and rest[path].name.strip().lower() == name.strip().lower():
            return path
    return next(path for path in candidates if not path.exists())


def given_policy_problems(o: dict[str, Any]) -> None:
    """The mentor's answers given as flags, each checked as its question checks it (before any question)."""
    checks: list[tuple[str, tuple[str, ...], Callable[[str], str | None]]] = [
        ("--mentor-address", tuple(o["mentor_address"]), address_problem),
        ("--mentor-timezone", (o["mentor_timezone"],) if o["mentor_timezone"] is not None else (), zone_problem),
        ("--window", tuple(o["window"]), window_problem),
    ]
    for flag, values, check in checks:
        for value in values:
            if problem := check(value):
                Asker.fail(flag, problem)
    for flag, value in (("--per-day", o["per_day"]), ("--per-week", o["per_week"])):
        if value is not None and value < 1:
            Asker.fail(flag, "must be at least 1")
    if o["per_day"] is not None and o["per_week"] is not None and o["per_week"] < o["per_day"]:
        Asker.fail("--per-week", f"must be at least --per-day ({o['per_day']})")


def policies_dir(config: Path, data: dict[str, Any]) -> Path:
    """Where the config about to be written puts the policies (as :func:`load_settings` will read it)."""
    from agent.config.environment import ENV_PREFIX

    named = os.environ.get(f"{ENV_PREFIX}POLICIES_DIR") or data.get("policies_dir") or "policies"
    return (config.parent / os.path.expanduser(str(named))).resolve()
