"""``mentor-agent agree MENTOR``: propose the standards to the mentor, and apply her answer.

Without options the proposal (agent.rules.agreement) goes into Drafts, for the student to read, edit and
move to the Outbox; with ``--send`` straight into the Outbox. Either way the daemon paces it like any message,
and records nothing until her answer comes: agent.reconcile.agreement reads it and gives a notice.
``--apply`` writes her answer into the policy file (agent.config.policy_edit), after showing the changes.
``--print`` shows the proposal and touches nothing (no account needed).
"""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from pathlib import Path

import click

from agent.cli.support import friendly
from agent.config.settings import Settings, default_config_path, load_settings
from agent.errors import Problem, UserError
from agent.rules.agreement import proposal_message, standards, standards_json
from agent.rules.envelope import domain_of, new_message_id
from agent.rules.localtime import describe, local_date
from agent.rules.policy import LoadedPolicy, load_policy


def _policy(reference: str, settings: Settings) -> LoadedPolicy:
    path = Path(reference)
    if path.suffix != ".toml":
        path = settings.policies_dir / f"{reference}.toml"
    return load_policy(path)


def print_proposal(loaded: LoadedPolicy, student_name: str) -> str:
    """The proposal as the mentor would read it: To, Subject and the text."""
    message = proposal_message(
        loaded.policy,
        student_name=student_name,
        student_address="you@example.org",
        now=datetime.now(UTC),
        message_id="<print@example.org>",
    )
    body = message.get_content()
    return f"To: {message['To']}\nSubject: {message['Subject']}\n\n{body}".rstrip("\n")


def draft(settings: Settings, config_file: str, loaded: LoadedPolicy, *, send: bool) -> str:
    """Put the proposal into Drafts (or the Outbox with ``send``) and record it; what to tell the student."""
    from agent.cli.steering import drafts_folder
    from agent.daemon.service import login_for
    from agent.mail.imap import Mailbox, MailboxError
    from agent.store.agreements import Agreements
    from agent.store.ledger import Ledger

    student = settings.student
    message_id = new_message_id(domain_of(student.address))
    now = datetime.now(UTC)
    message = proposal_message(
        loaded.policy, student_name=student.name, student_address=student.address, now=now, message_id=message_id
    )
    raw = message.as_bytes(policy=email.policy.SMTP)
    mailbox = Mailbox(settings.imap, login_for(settings.imap, "imap", config_file))
    try:
        mailbox.connect()
        folders = mailbox.resolve_folders(settings.imap.folders)
        folder = folders.outbox if send else drafts_folder(mailbox, settings.imap.folders.drafts)
        ledger = Ledger(settings.ledger_path)
        try:  # recorded first: her answer must be recognised even if this command stops after the APPEND
            version = loaded.policy.agreement.version + 1
            Agreements(ledger).propose(message_id, loaded.id, version, now, standards_json(standards(loaded.policy)))
        finally:
            ledger.close()
        mailbox.append(folder, raw, [] if send else ["\\Draft", "\\Seen"])
    except MailboxError as error:
        raise UserError([Problem(config_file, "imap", f"cannot reach the mailbox: {error}")]) from error
    finally:
        mailbox.close()
    name = loaded.name
    if send:
        return (
            f"The proposal to {name} (“{message['Subject']}”) is in {folder}: it goes when your agreement allows. "
            "When she answers, you get a notice (the daemon must be running)."
        )
    return (
        f"The proposal to {name} (“{message['Subject']}”) is in {folder}. Read it, change the words if you like "
        "(keep the numbered lines), then move it to the Outbox: it goes when your agreement allows. When she "
        "answers, you get a notice (the daemon must be running)."
    )


def apply(settings: Settings, loaded: LoadedPolicy) -> str:
    """Write the mentor's recorded answer into the policy file; what was done, changes side by side."""
    from agent.config.policy_edit import apply_agreement
    from agent.store.agreements import Agreements
    from agent.store.ledger import Ledger

    name, path = loaded.name, loaded.path
    if not settings.ledger_path.exists():
        raise UserError([Problem(str(settings.ledger_path), "", "no ledger yet: propose with `mentor-agent agree`")])
    ledger = Ledger(settings.ledger_path)
    try:
        store = Agreements(ledger)
        proposal = store.latest(loaded.id)
        if proposal is None:
            raise UserError(f"nothing proposed to {name} yet: `mentor-agent agree {loaded.id}` drafts the proposal")
        zone = settings.student.zone
        if proposal.answered is None:
            raise UserError(
                f"{name} has not answered your proposal of {describe(proposal.proposed, zone)} yet "
                "(the running daemon reads her answer from your INBOX and tells you)"
            )
        if proposal.applied is not None:
            raise UserError(f"her answer was applied to {path} already, {describe(proposal.applied, zone)}")
        if proposal.outcome == "unclear":
            raise UserError(
                f"{name}'s answer could not be read as “fine” or as changed values (see the notice); "
                f"edit {path} to what you agreed instead"
            )
        agreed_on = local_date(proposal.answered, zone)
        apply_agreement(path, proposal.changes, agreed_on, proposal.version)
        store.applied(proposal.message_id, datetime.now(UTC))
    finally:
        ledger.close()
    lines = []
    if proposal.said:
        width = max(len(f"{number}. {label}:") for number, label, _, _ in proposal.said)
        wide = max(len(old) for _, _, old, _ in proposal.said)
        lines.append(f"{name}'s changes (you proposed → she wrote):")
        lines += [
            f"  {(f'{number}. {label}:'):<{width}}  {old:<{wide}}  →  {new}"
            for number, label, old, new in proposal.said
        ]
    else:
        lines.append(f"{name} agreed to the standards as proposed.")
    lines.append(
        f"Written into {path} (its comments kept): agreed on {agreed_on.isoformat()}, version {proposal.version}."
    )
    return "\n".join(lines)


@click.command("agree")
@click.argument("mentor")
@click.option("--send", is_flag=True, help="Put the proposal in the Outbox (sent when the agreement allows).")
@click.option("--apply", "apply_answer", is_flag=True, help="Write the mentor's answer into the policy file.")
@click.option("--print", "print_only", is_flag=True, help="Show the proposal; touch no mailbox and no file.")
@click.option("--student-name", help="With --print: your name (default: [student] name in the config).")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def agree_command(
    mentor: str, send: bool, apply_answer: bool, print_only: bool, student_name: str | None, config: Path | None
) -> None:
    """Propose the standards of MENTOR's policy (an id or .toml file) to her, or apply her answer.

    The proposal goes to Drafts for you to edit and move to the Outbox (--send: to the Outbox at once); each
    standard is a numbered line she can answer with "fine" or a new value. The daemon reads her answer and
    tells you; --apply then writes it into the policy file, keeping its comments."""
    if sum((send, apply_answer, print_only)) > 1:
        raise UserError([Problem("agree", "", "--send, --apply and --print go one at a time")])
    if print_only:
        settings = load_settings(config)
        click.echo(print_proposal(_policy(mentor, settings), student_name or settings.student.name))
        return
    if student_name:
        raise UserError([Problem("--student-name", "", "only goes with --print (otherwise [student] name is used)")])
    settings = load_settings(config, required=True)
    loaded = _policy(mentor, settings)
    if apply_answer:
        click.echo(apply(settings, loaded))
        return
    click.echo(draft(settings, str(config or default_config_path()), loaded, send=send))
