"""The agreement in the daemon's pass: the mentor's answer to a proposal, and the review when it is due.

Her answer is a message in INBOX from one of her addresses whose In-Reply-To/References name the proposal's
Message-ID (recorded by ``mentor-agent agree``); the Subject line is never read. It is read once
(agent.rules.agreement_answer.read_reply: its plain and HTML parts), recorded in the ledger, and the
student gets a notice quoting her own lines under the reading, with any changes side by side and the one
command that writes them into the policy file: nothing changes before that. An answer that does not read
surely ("please read") is recorded as unclear, and `--apply` refuses it. Every later answer of hers in the
thread is read and told too: written after the one recorded, it replaces it ("please ignore my last e-mail"),
and `--apply` uses the latest; after the agreement was applied, the student is told she wrote again.

The review: once ``[agreement] review_every`` has passed since ``agreed_on``, one notice offers to agree
again, with what actually happened in that time (messages a week, how long her answers took, meetings held).
"""

from __future__ import annotations

import email.policy
import logging
import weakref
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from agent.config.settings import Student
from agent.errors import UserError
from agent.mail.session import MailboxError
from agent.reconcile.context import World
from agent.reconcile.history import Seen, new_headers
from agent.rules.agreement import proposal_message, standards, standards_from_json, standards_json
from agent.rules.agreement_answer import Answer, columns, quotes_proposal, read_reply, side_by_side
from agent.rules.agreement_review import latest_review, review_notice
from agent.rules.answer_kind import classify
from agent.rules.authenticity import auth_problem
from agent.rules.envelope import parse_envelope
from agent.rules.localtime import describe, local_date
from agent.rules.notices import pronouns
from agent.rules.own_lines import reply_texts
from agent.rules.policy import LoadedPolicy
from agent.store.agreements import Agreements, Proposal
from agent.store.ledger import Ledger
from agent.store.rounds import MeetingStore

log = logging.getLogger("mentor_agent.agreement")
_SEEN: weakref.WeakKeyDictionary[Any, Seen] = weakref.WeakKeyDictionary()  # per IMAP session


def apply_command(policy_id: str) -> str:
    return f"mentor-agent agree {policy_id} --apply"


def her_words(answer: Answer, her: str) -> str:
    """Her own lines, quoted under the reading: the student can catch a wrong one."""
    if not answer.words.strip():
        return f"{her.title()} own words: none (the answer holds only what it quotes, or no text that can be read)."
    return f"{her.title()} own words (what was read):\n" + "\n".join(
        f"  > {line}" if line.strip() else "  >" for line in answer.words.split("\n")
    )


def answer_notice(loaded: LoadedPolicy, proposal: Proposal, answer: Answer, zone: Any) -> tuple[str, list[str]]:
    """(title, lines) of the notice that tells the student what the mentor answered, quoting her words."""
    name, path = loaded.name, loaded.path
    she, her = pronouns(loaded.policy.mentor.pronoun)
    when = describe(proposal.proposed, zone)
    applying = (
        f"Nothing changes until you apply it: `{apply_command(loaded.id)}` (or a flag on this notice) writes it "
        f"into {path} (keeping its comments), as version {proposal.version}, agreed on the day of {her} answer. "
        f"If this is not what {she} said, do not apply it: edit {path} to what you agreed instead."
    )
    if answer.outcome == "accepted":
        return (
            f"{name} agreed to your standards",
            [f"{name} answered your proposal of {when}: agreed, as proposed.", her_words(answer, her), applying],
        )
    if answer.outcome == "changed":
        return (
            f"{name} agreed, with {len(answer.changes)} change(s)",
            [
                f"{name} answered your proposal of {when}: agreed, with these changes (what you proposed → "
                f"what {she} wrote):",
                "\n".join(side_by_side(answer.changes)),
                her_words(answer, her),
                applying,
            ],
        )
    lines = [
        f"{name} answered your proposal of {when}, but {her} answer does not read surely as “fine” or as "
        "changed values, so nothing was recorded as agreed.",
        her_words(answer, her),
    ]
    if answer.problems:
        lines.append("Why it needs your reading:\n" + "\n".join(f"  • {p}" for p in answer.problems))
    lines.append(
        f"Please read {her} answer yourself. You may ask {name} to answer with “fine” or with the numbered lines: "
        f"{her} next answer in the thread is read too. Or, if you did agree, edit {path} to what you agreed, "
        "with agreed_on and version in its [agreement] table."
    )
    return f"Please read {name}'s answer to your proposal", lines


def same_mentor(ledger: Ledger, policy_id: str, loaded: LoadedPolicy) -> bool:
    """Whether a proposal recorded under ``policy_id`` went to the mentor of ``loaded``: a mentor is her
    addresses, so a renamed policy file keeps its proposals."""
    known = set(ledger.mentor_addresses.get(policy_id, ()))
    return policy_id == loaded.id or bool(known & set(loaded.policy.mentor.addresses))


def open_proposal(ledger: Ledger, loaded: LoadedPolicy) -> Proposal | None:
    """The latest proposal to ``loaded``'s mentor still waiting for her answer, if any."""
    waiting = [p for p in Agreements(ledger).waiting().values() if same_mentor(ledger, p.mentor, loaded)]
    return max(waiting, key=lambda p: p.proposed) if waiting else None


async def read_answers(world: World, store: Agreements) -> None:
    known = store.listening()  # her answers are read whenever they come: a later one may take an earlier back
    if not known:
        return
    waiting = store.waiting()
    seen = _SEEN.setdefault(world.mailbox, Seen())
    owners: set[str] | None = None  # what mentors received from us, read once a pass if needed
    for info in await new_headers(world, seen, world.folders.inbox):
        envelope = parse_envelope(info.headers)
        mentor = world.book.for_address(envelope.sender) if envelope.sender else None
        if mentor is None or not envelope.message_id or envelope.agent_kind or not classify(info.headers).answer:
            continue  # only her own words answer: not her out-of-office reply, nor a read receipt
        if (problem := auth_problem(envelope.authentication, envelope.sender)) is not None:
            log.warning("%s is not read as %s's answer: %s", envelope.key, mentor.name, problem)
            continue
        proposal = next((known[r] for r in envelope.references if r in known), None)
        if proposal is not None and not same_mentor(world.ledger, proposal.mentor, mentor):
            continue
        # A mail program may give an edited draft a new Message-ID: then an answer in the thread of something
        # she received from us that quotes the proposal's numbered lines answers her latest proposal.
        edited = [p for p in waiting.values() if same_mentor(world.ledger, p.mentor, mentor)] if not proposal else []
        if proposal is None and edited and owners is None:
            owners = set(world.ledger.item_owners())
        if proposal is None and not (edited and owners and set(envelope.references) & owners):
            continue
        if proposal is not None and proposal.answer_id == envelope.message_id:
            continue  # recorded before
        raw = await world.imap(world.mailbox.fetch, world.folders.inbox, info.uid)
        if raw is None:
            continue
        texts = reply_texts(raw)
        if proposal is None:
            if not quotes_proposal(texts[0] if texts else "", standards_from_json(edited[-1].standards)):
                continue
            proposal = edited[-1]
        names = (mentor.policy.mentor.name, world.settings.student.name)
        answer = read_reply(texts, standards_from_json(proposal.standards), names=names)
        at = min(envelope.date or info.internaldate or world.now(), world.now())
        if not store.first_reading(envelope.message_id, proposal.message_id, world.now()):
            continue  # read and told before a restart
        if proposal.applied is not None:
            if proposal.answered is None or at >= proposal.answered:  # not one written before the one applied
                title, lines = wrote_again(mentor, proposal, answer, world.settings.student.zone)
                await world.notify(title, lines, about=envelope.message_id)
            continue
        changes = {c.standard.path: c.toml for c in answer.changes}
        said = [[c.standard.number, c.standard.label, c.standard.text, c.text] for c in answer.changes]
        if not store.answered(
            proposal.message_id,
            answer_id=envelope.message_id,
            at=at,
            outcome=answer.outcome,
            changes=changes,
            said=said,
        ):
            continue  # written before the answer recorded: that one stands
        known[proposal.message_id] = store.get(proposal.message_id) or proposal
        waiting.pop(proposal.message_id, None)
        world.ledger.log("agreement answer", mentor=mentor.id, message=envelope.message_id, detail=answer.outcome)
        log.info("%s answered the agreement proposal: %s", mentor.name, answer.outcome)
        title, lines = answer_notice(mentor, proposal, answer, world.settings.student.zone)
        if proposal.answer_id is not None and proposal.outcome != "unclear":
            her = pronouns(mentor.policy.mentor.pronoun)[1]
            lines.insert(
                0,
                f"{mentor.name} wrote again: this answer replaces {her} earlier one (read as "
                f"“{_READ_AS[proposal.outcome or 'unclear']}”), and `{apply_command(mentor.id)}` uses this one.",
            )
        from agent.config.policy_edit import problems_with  # tomlkit loads when a mentor answers, not at start

        broken = problems_with(mentor.path, changes) if changes else []
        if broken:
            her = pronouns(mentor.policy.mentor.pronoun)[1]
            lines.append(
                f"{her.title()} values do not fit the rest of the policy, so `--apply` will refuse them as they are:\n"
                + "\n".join(f"  • {problem}" for problem in broken)
                + f"\nAgree with {mentor.name} on values that fit, or edit {mentor.path} yourself."
            )
        await world.notify(title, lines, about=envelope.message_id)


_READ_AS = {"accepted": "agreed, as proposed", "changed": "agreed, with changes", "unclear": "please read"}


def wrote_again(loaded: LoadedPolicy, proposal: Proposal, answer: Answer, zone: Any) -> tuple[str, list[str]]:
    """(title, lines) of the notice of her answer in the thread after the agreement was applied: nothing changes."""
    she, her = pronouns(loaded.policy.mentor.pronoun)
    applied = describe(proposal.applied, zone) if proposal.applied else "before"
    lines = [
        f"{loaded.name} wrote again in the thread of your proposal of {describe(proposal.proposed, zone)}, after "
        f"you applied {her} earlier answer ({applied}). This one reads: {_READ_AS[answer.outcome]}.",
    ]
    if answer.changes:
        lines.append("\n".join(side_by_side(answer.changes)))
    lines.append(her_words(answer, her))
    if answer.problems:
        lines.append("Why it needs your reading:\n" + "\n".join(f"  • {p}" for p in answer.problems))
    lines.append(
        f"Nothing was changed: {loaded.path} holds what you applied. If {she} now wants something else, agree "
        f"again (`mentor-agent agree {loaded.id} --again`) or edit {loaded.path}."
    )
    return f"{loaded.name} wrote again about your agreement", lines


async def apply_flagged(world: World, store: Agreements) -> None:
    """A flag on the notice of an answer applies it, as `mentor-agent agree ID --apply` does; a notice says so."""
    ready = store.to_apply()
    if not ready:
        return
    folder = world.folders.notices
    flagged = await world.imap(world.mailbox.flagged, folder)
    if not flagged:
        return
    for info in await world.imap(world.mailbox.headers, folder, flagged):
        envelope = parse_envelope(info.headers)
        proposal = next((p for p in ready if p.answer_id in envelope.references), None)
        loaded = next((b for b in world.book if proposal and same_mentor(world.ledger, proposal.mentor, b)), None)
        if envelope.agent_kind != "notice" or proposal is None or loaded is None:
            continue
        ready.remove(proposal)
        try:
            applied = apply_answer(world.ledger, loaded, world.settings.student.zone, world.now(), proposal)
        except UserError as error:
            # Told once: the flag comes off (flag the notice again once the file is fixed).
            await world.imap(world.mailbox.remove_flags, folder, info.uid, ["\\Flagged"])
            problems = "\n".join(f"  • {problem}" for problem in error.problems)
            await world.notify(
                f"Not applied: {loaded.name}'s answer",
                [
                    f"You flagged the notice of {loaded.name}'s answer, but it cannot be applied:\n{problems}",
                    "The flag was taken off that notice; flag it again once this is put right.",
                ],
                about=proposal.answer_id,
            )
            continue
        log.info("the answer of %s applied to %s (the notice was flagged)", loaded.name, loaded.path)
        await world.notify(
            f"Applied: your agreement with {loaded.name}, version {applied.version}",
            [
                "You flagged the notice of the answer, so it was applied:",
                "\n".join(applied_lines(loaded.name, applied)),
            ],
            about=proposal.answer_id,
        )


async def offer_reviews(world: World, store: Agreements) -> datetime | None:
    """Give each review notice that is due (once); returns when the next one is due."""
    now, zone = world.now(), world.settings.student.zone
    upcoming: list[datetime] = []
    for loaded in world.book:
        agreement = loaded.policy.agreement
        if agreement.agreed_on is None:
            continue
        review = latest_review(agreement.agreed_on, agreement.review_every, zone, now)
        start, due = review.start, review.due
        upcoming.append(review.next_due)
        key = f"{agreement.agreed_on.isoformat()} v{agreement.version} #{review.number}"
        if review.number == 0 or store.review_told(loaded.id, key):
            continue
        addresses = loaded.policy.mentor.addresses
        sent = world.ledger.items_between(loaded.id, start, due, addresses)
        hours = store.answer_times(loaded.id, start, due, addresses)
        held = sum(
            1
            for owner, begins, _end, status in MeetingStore(world.ledger).taken()
            if owner == loaded.id and status == "accepted" and start <= begins < min(due, now)
        )
        title, lines = review_notice(
            loaded.policy, loaded.id, start=start, end=due, sent=sent, answer_hours=hours, meetings_held=held
        )
        store.tell_review(loaded.id, key, now)
        log.info("review of the agreement with %s is due: notice given", loaded.name)
        await world.notify(title, lines)
    return min(upcoming, default=None)


async def pass_once(world: World) -> datetime | None:
    """Read answers to proposals and give review notices; returns when the next review is due."""
    store = Agreements(world.ledger)
    try:
        await read_answers(world, store)
        await apply_flagged(world, store)
        return await offer_reviews(world, store)
    except MailboxError:
        raise
    except Exception:  # a bug here must not stop the mail path
        log.exception("agreement: the pass failed; trying again on the next one")
        return None


# -- what `mentor-agent agree` does (and the demo, as the student) ----------------------------------------------


def make_proposal(ledger: Ledger, loaded: LoadedPolicy, student: Student, now: datetime, message_id: str) -> bytes:
    """Record a proposal of ``loaded``'s standards and return it as an e-mail, for Drafts or the Outbox.

    Recorded first: her answer must be recognised even if the caller stops right after putting it in a folder.
    """
    message = proposal_message(
        loaded.policy, student_name=student.name, student_address=student.address, now=now, message_id=message_id
    )
    version = loaded.policy.agreement.version + 1
    Agreements(ledger).propose(message_id, loaded.id, version, now, standards_json(standards(loaded.policy)))
    return message.as_bytes(policy=email.policy.SMTP)


@dataclass(frozen=True)
class Applied:
    said: list[list[Any]]  # [number, label, proposed text, her text] per change
    agreed_on: date
    version: int
    path: Path
    she: str = "they"


def apply_answer(
    ledger: Ledger, loaded: LoadedPolicy, zone: tzinfo, now: datetime, proposal: Proposal | None = None
) -> Applied:
    """Write the mentor's answer into her policy file: to ``proposal``, else the latest answer not applied
    yet, else (to say why not) the latest proposal. UserError if there is none to apply, or if her values do
    not make a valid policy: the file then stays as it was."""
    name, path = loaded.name, loaded.path
    store = Agreements(ledger)
    if proposal is None:
        open_answers = [p for p in store.to_apply() if same_mentor(ledger, p.mentor, loaded)]
        every = [p for p in store.all() if same_mentor(ledger, p.mentor, loaded)]
        proposal = open_answers[-1] if open_answers else (every[-1] if every else None)
    if proposal is None:
        raise UserError(f"nothing proposed to {name} yet: `mentor-agent agree {loaded.id}` drafts the proposal")
    if proposal.answered is None:
        raise UserError(
            f"{name} has not answered your proposal of {describe(proposal.proposed, zone)} yet "
            "(the running daemon reads the answer from your INBOX and tells you)"
        )
    if proposal.applied is not None:
        raise UserError(f"{name}'s answer was applied to {path} already, {describe(proposal.applied, zone)}")
    if proposal.outcome not in ("accepted", "changed"):  # only a clean reading is ever written
        raise UserError(
            f"{name}'s answer could not be read as “fine” or as changed values (see the notice); "
            f"edit {path} to what you agreed instead"
        )
    agreed_on = local_date(proposal.answered, zone)
    from agent.config.policy_edit import apply_agreement  # tomlkit: only `agree --apply` writes a policy

    apply_agreement(path, proposal.changes, agreed_on, proposal.version)
    store.applied(proposal.message_id, now)
    ledger.log("agreement applied", mentor=loaded.id, message=proposal.message_id, detail=f"v{proposal.version}")
    return Applied(proposal.said, agreed_on, proposal.version, path, pronouns(loaded.policy.mentor.pronoun)[0])


def applied_lines(name: str, applied: Applied) -> list[str]:
    """What `agree --apply` says: her changes side by side, and what was written where."""
    lines = []
    if applied.said:
        lines.append(f"{name}'s changes (you proposed → {applied.she} wrote):")
        lines += columns(applied.said)
    else:
        lines.append(f"{name} agreed to the standards as proposed.")
    lines.append(
        f"Written into {applied.path} (its comments kept): agreed on {applied.agreed_on.isoformat()}, "
        f"version {applied.version}."
    )
    return lines
