"""Mail in INBOX about a mentor's messages that is not her answer, and what the student is told of it.

* A delivery report, from a mail system, that a message to her failed: the student is told once, with the
  receiving server's own words. The message still counted for the day and week it went (it went: the agreement
  is about what is sent), but no longer waits for her answer once it failed at every one of her addresses it was
  written to: she never got it. Resending is the student's choice (a new message).
* A reply from an address her policy does not list (her phone's mail, ``her+tag@``): it does not count (only her
  own addresses can answer), and the student is told once per address, with the policy file to add it to.

Both "once" are kept in the ledger's log, so a restart (which reads INBOX again) does not repeat them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from agent.mail.port import HeaderInfo
from agent.reconcile.context import World
from agent.rules.addresses import normal_address
from agent.rules.envelope import Envelope
from agent.rules.notices import pronouns
from agent.rules.policy import LoadedPolicy
from agent.store.agreements import proposes
from agent.store.answers import (
    BOUNCED,
    BOUNCED_TO,
    NOT_AN_ANSWER,
    UNKNOWN_ADDRESS,
    bounced_to,
    logged,
    recipients_of,
    subject_of,
)
from agent.store.ledger import SCHEDULED

if TYPE_CHECKING:  # the reader of replies and reports loads with the first one read (issue 21: not before a backlog)
    from agent.rules.answer_kind import DeliveryReport, Recipient

log = logging.getLogger("mentor_agent.history")

Owners = dict[str, tuple[str, frozenset[str]]]
Reports = dict[int, "DeliveryReport"]  # delivery reports in INBOX already read, by UID (looked at again for a day)
Bounce = Literal["told", "nothing new", "not ours"]


async def read_bounce(world: World, info: HeaderInfo, ours: Owners, reports: Reports) -> Bounce:
    """Record and tell a delivery report that one of the mentors' messages failed to reach her.

    Only a mail system's report is believed. The message no longer waits for her answer only when it failed at
    every one of her addresses it was written to; one of two failing is told, and it still waits."""
    report = reports.get(info.uid)
    if report is None:
        from agent.rules.answer_kind import read_delivery_report

        raw = await world.imap(world.mailbox.fetch, world.folders.inbox, info.uid)
        report = read_delivery_report(raw or b"")
        reports[info.uid] = report
    item = report.original
    if item is None or item not in ours:
        return "not ours"  # not about mail to a mentor (or not yet: the phone's copy may still be on its way)
    policy_id, addresses = ours[item]
    failed = [r for r in report.failed if not addresses or r.names(addresses)]
    if not failed:
        if report.recipients:
            log.info(
                "delivery report about %s: %s", item, ", ".join(f"{r.address} {r.action}" for r in report.recipients)
            )
        return "nothing new"
    if not report.by_mail_system:
        log.warning("a delivery report about %s from %s, not a mail system: not believed", item, report.sender)
        return "nothing new"
    if logged(world.ledger, BOUNCED, item):
        return "nothing new"
    known = bounced_to(world.ledger, item)
    fresh = {_hers(r, addresses): r for r in failed if _hers(r, addresses) not in known}
    if not fresh:
        return "nothing new"
    for address in fresh:
        world.ledger.log(BOUNCED_TO, mentor=policy_id, message=item, detail=address)
    written_to = (recipients_of(world.ledger, item) & addresses) or set(addresses)
    still = sorted(written_to - known - set(fresh))
    loaded = world.book.by_id.get(policy_id)
    name = loaded.name if loaded is not None else policy_id
    she, her = pronouns(loaded.policy.mentor.pronoun if loaded is not None else "they")
    subject = subject_of(world.ledger, item) or report.subject or item
    words = "; ".join(f"{address}: {r.words or r.status or 'no reason given'}" for address, r in fresh.items())
    said = [
        f"  {address}: {r.words or 'no reason given'}" + (f" (status {r.status})" if r.status else "")
        for address, r in fresh.items()
    ]
    if still:
        at = ", ".join(fresh)
        log.warning("%s to %s bounced at %s (it also went to %s): %s", item, name, at, ", ".join(still), words)
        await world.notify(
            f"Not delivered to {name} at {at}: {subject}",
            [
                f"Your message “{subject}” did not reach {name} at {at}. The mail server said:",
                *said,
                f"It also went to {', '.join(still)}, and no report says it failed there: {she} has it, so it "
                f"still waits for {her} answer. If that fails too, you are told.",
            ],
            about=subject,
        )
        return "told"
    world.ledger.log(BOUNCED, mentor=policy_id, message=item, detail=words)
    log.warning("%s to %s bounced: %s", item, name, words)
    await world.notify(
        f"Not delivered to {name}: {subject}",
        [
            f"Your message “{subject}” did not reach {name}. The mail server said:",
            *said,
            f"It still counts for the day and week it went, but no longer as waiting for {her} answer: {she} never "
            "got it. To try again, write it anew (a copy of the same message is refused as already sent), perhaps "
            f"to another of {her} addresses.",
        ],
        about=subject,
    )
    return "told"


def _hers(recipient: Recipient, addresses: frozenset[str]) -> str:
    """The address of hers the student wrote to (before a forward), else the one the report names."""
    if recipient.original and normal_address(recipient.original) in addresses:
        return recipient.original
    return recipient.address


async def tell_unknown_address(world: World, envelope: Envelope, ours: Owners) -> None:
    """Once per address: a reply to one of the mentors' messages came from an address not in her policy."""
    sender = envelope.sender
    items = [ref for ref in envelope.references if ref in ours]
    if items and not sender:
        await _tell_nobody(world, envelope, ours[items[0]][0])
        return
    if not items or sender == normal_address(world.settings.student.address):
        return
    loaded = world.book.by_id.get(ours[items[0]][0])
    if loaded is None or logged(world.ledger, UNKNOWN_ADDRESS, sender):
        return
    her = pronouns(loaded.policy.mentor.pronoun)[1]
    world.ledger.log(UNKNOWN_ADDRESS, mentor=loaded.id, message=sender, detail=envelope.subject)
    local, _, domain = sender.partition("@")
    tagged = "+" in local and f"{local.split('+')[0]}@{domain}" in loaded.policy.mentor.addresses
    why = (
        f"one of {her} addresses with a +tag, which {loaded.path} does not list as such"
        if tagged
        else (f"not one of the addresses in {loaded.path}")
    )
    log.info("a reply from %s (not in %s) to %s did not count", sender, loaded.path, items[0])
    await world.notify(
        f"A reply from an address not in {loaded.name}'s policy: {sender}",
        [
            f"“{envelope.subject}” answers a message you wrote to {loaded.name}, but it comes from {sender}, {why}.",
            f"It did not count as {her} answer, so what waits for {her} answer still waits.",
            f"If the address is {loaded.name}'s, add it to addresses under [mentor] in {loaded.path}: replies "
            "from it will count. You are told this once for this address.",
        ],
        about=envelope.subject,
    )


async def _tell_nobody(world: World, envelope: Envelope, policy_id: str) -> None:
    """Once per message: a reply to one of the mentors' messages whose From names no one address cleanly (two
    addresses, an address glued to another): whoever wrote it, it cannot count, and she is told so."""
    loaded = world.book.by_id.get(policy_id)
    if loaded is None or logged(world.ledger, UNKNOWN_ADDRESS, envelope.key):
        return
    her = pronouns(loaded.policy.mentor.pronoun)[1]
    world.ledger.log(UNKNOWN_ADDRESS, mentor=loaded.id, message=envelope.key, detail=envelope.subject)
    log.info("a reply whose From names no one address to %s did not count", loaded.name)
    await world.notify(
        f"A reply whose From names no one address: {envelope.subject}",
        [
            f"“{envelope.subject}” answers a message you wrote to {loaded.name}, but its From field does not name "
            "one address cleanly (more than one address, or an address written inside another), so the agent "
            "cannot tell who wrote it.",
            f"It did not count as {her} answer, so what waits for {her} answer still waits. If it is {her} "
            f"answer, ask {loaded.name} to answer again from the address in {loaded.path}.",
        ],
        about=envelope.key,
    )


async def tell_unauthenticated(world: World, envelope: Envelope, loaded: LoadedPolicy, problem: str) -> None:
    """A reply to one of the mentor's messages with her address in From that the student's provider did not find
    to be hers (``problem``: Authentication-Results): it does not count, and she is told (once per message)."""
    her = pronouns(loaded.policy.mentor.pronoun)[1]
    await world.notify(
        f"A reply that did not count as {loaded.name}'s: {envelope.subject}",
        [
            f"“{envelope.subject}” has {envelope.sender} in From, but your provider's checks do not confirm it came "
            f"from there ({problem}), so it did not count as {her} answer and what waits for it still waits.",
            f"If {loaded.name} did write it (a forwarding service can break the checks), ask {loaded.name} to "
            "answer again directly.",
        ],
        about=envelope.key,
    )


async def tell_by_subject_alone(world: World, envelope: Envelope, loaded: LoadedPolicy, sign: str) -> None:
    """A reply of hers to the student's mail known for an automatic one by its subject alone (no header says so):
    it does not count. When that matters — something of the student's waits for her answer, or it answers an
    agreement proposal — the student is told, once (the mark in the same transaction): a subject she typed ("Read:
    your abstract") would otherwise hold it back without a word. Otherwise it is only logged, as any auto-reply."""
    waiting = bool(world.ledger.in_states(SCHEDULED, mentor=loaded.id))
    proposal = proposes(world.ledger, envelope.references)
    her = pronouns(loaded.policy.mentor.pronoun)[1]
    subject = envelope.subject or "(no subject)"
    with world.ledger.transaction():
        world.ledger.log(NOT_AN_ANSWER, mentor=loaded.id, message=envelope.message_id, detail=sign)
        if not waiting and not proposal:
            return
        what = (
            "If it is her answer to your agreement proposal, read it yourself: mentor-agent did not read it as one."
            if proposal
            else f"If {loaded.name} wrote it herself, flag what waits for {her} answer in Scheduled to send it now."
        )
        notice = world.owe(
            f"Not counted as {loaded.name}'s answer: {subject}",
            [
                f"“{subject}” from {loaded.name} looks automatic by its subject alone ({sign}): an out-of-office "
                f"reply or a read receipt, so it did not count as {her} answer.",
                what,
            ],
            about=envelope.key,
        )
    await world.tell(notice)


def untagged(address: str) -> str:
    """``her+tag@x`` → ``her@x`` (an address without a tag is returned as it is)."""
    local, at, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"


async def tell_tagged_recipients(world: World, envelope: Envelope) -> None:
    """Once per address: the student wrote to a mentor's address with a +tag, which her policy does not list, so
    the message is mail to no mentor (not paced, and not counted)."""
    for address in envelope.recipients:
        loaded = world.book.for_address(untagged(address)) if "+" in address.partition("@")[0] else None
        if loaded is None or logged(world.ledger, UNKNOWN_ADDRESS, address):
            continue
        world.ledger.log(UNKNOWN_ADDRESS, mentor=loaded.id, message=address, detail=envelope.subject)
        log.info("%s is %s's address with a +tag, not in %s", address, loaded.name, loaded.path)
        await world.notify(
            f"Mail to {address} is not paced as {loaded.name}'s",
            [
                f"“{envelope.subject}” goes to {address}, which is {untagged(address)} with a +tag; {loaded.path} "
                "does not list it, so it is handled as mail to no mentor: not paced, not counted, and her replies "
                "to it do not count as her answers.",
                f"If that is how she wants to be written to, add {address} to addresses under [mentor] in "
                f"{loaded.path}. You are told this once for this address.",
            ],
            about=envelope.subject,
        )
