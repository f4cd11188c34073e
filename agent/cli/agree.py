"""``mentor-agent agree MENTOR``: propose the standards to the mentor, and apply her answer.

Without options the proposal (agent.rules.agreement) goes into Drafts, for the student to read, edit and
move to the Outbox; with ``--send`` straight into the Outbox. Either way the daemon paces it like any message,
and records nothing until her answer comes: agent.reconcile.agreement reads it and gives a notice.
``--apply`` writes her answer into the policy file (agent.config.policy_edit), after showing the changes.
``--print`` shows the proposal and touches nothing (no account needed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from agent.cli.support import friendly, policy_path
from agent.config.settings import Settings, default_config_path, load_settings
from agent.errors import Problem, UserError
from agent.rules.agreement import SUBJECT, proposal_message
from agent.rules.envelope import domain_of, new_message_id
from agent.rules.policy import LoadedPolicy, load_policy


def _policy(reference: str, settings: Settings) -> LoadedPolicy:
    return load_policy(policy_path(reference, settings.policies_dir))


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


def draft(settings: Settings, config_file: str, loaded: LoadedPolicy, *, send: bool, again: bool = False) -> str:
    """Put the proposal into Drafts (or the Outbox with ``send``) and record it; what to tell the student.

    While an earlier proposal to her waits for an answer, only ``again`` makes another (run twice, ``--send``
    would otherwise send her the same proposal twice)."""
    from agent.cli.steering import drafts_folder
    from agent.daemon.session import connect
    from agent.mail.session import MailboxError
    from agent.reconcile.agreement import make_proposal, open_proposal
    from agent.rules.localtime import describe
    from agent.store.ledger import Ledger

    ledger = Ledger(settings.ledger_path)
    try:
        waiting = open_proposal(ledger, loaded)
        if waiting is not None and not again:
            when = describe(waiting.proposed, settings.student.zone)
            raise UserError(
                [
                    Problem(
                        "agree",
                        "",
                        f"your proposal of {when} still waits for {loaded.name}'s answer (in "
                        f"{settings.imap.folders.drafts or 'Drafts'}, {settings.imap.folders.outbox} or sent); "
                        "--again makes another one",
                    )
                ]
            )
        try:
            mailbox, folders = connect(settings, config_file, ledger.agent_id())  # as the daemon logs in
        except MailboxError as error:
            raise UserError([Problem(config_file, "imap", f"cannot reach the mailbox: {error}")]) from error
        try:
            outbox = folders.outbox  # named as it is called in her mailbox ("Mentor Outbox"), not "the Outbox"
            folder = outbox if send else drafts_folder(mailbox, settings.imap.folders.drafts)
            message_id = new_message_id(domain_of(settings.student.address))
            raw = make_proposal(ledger, loaded, settings.student, datetime.now(UTC), message_id)
            mailbox.append(folder, raw, [] if send else ["\\Draft", "\\Seen"])
        except MailboxError as error:
            raise UserError([Problem(config_file, "imap", f"cannot reach the mailbox: {error}")]) from error
        finally:
            mailbox.close()
    finally:
        ledger.close()
    name = loaded.name
    if send:
        return (
            f"The proposal to {name} (“{SUBJECT}”) is in {folder}: it goes when your agreement allows. "
            f"When {name} answers, you get a notice (the daemon must be running)."
        )
    return (
        f"The proposal to {name} (“{SUBJECT}”) is in {folder}. Read it, change the words if you like "
        f"(keep the numbered lines), then move it to {outbox}: it goes when your agreement allows. When "
        f"{name} answers, you get a notice (the daemon must be running)."
    )


def apply(settings: Settings, loaded: LoadedPolicy) -> str:
    """Write the mentor's recorded answer into the policy file; what was done, changes side by side."""
    from agent.reconcile.agreement import applied_lines, apply_answer
    from agent.store.ledger import Ledger

    if not settings.ledger_path.exists():
        raise UserError([Problem(str(settings.ledger_path), "", "no ledger yet: propose with `mentor-agent agree`")])
    ledger = Ledger(settings.ledger_path)
    try:
        applied = apply_answer(ledger, loaded, settings.student.zone, datetime.now(UTC))
    finally:
        ledger.close()
    return "\n".join(applied_lines(loaded.name, applied))


@click.command("agree")
@click.argument("mentor")
@click.option("--send", is_flag=True, help="Put the proposal in your outbox folder (sent when the agreement allows).")
@click.option("--apply", "apply_answer", is_flag=True, help="Write the mentor's answer into the policy file.")
@click.option("--again", is_flag=True, help="Propose anew while an earlier proposal still waits for an answer.")
@click.option("--print", "print_only", is_flag=True, help="Show the proposal; touch no mailbox and no file.")
@click.option("--student-name", help="With --print: your name (default: [student] name in the config).")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def agree_command(
    mentor: str,
    send: bool,
    apply_answer: bool,
    again: bool,
    print_only: bool,
    student_name: str | None,
    config: Path | None,
) -> None:
    """Propose the standards of MENTOR's policy (an id or .toml file) to her, or apply her answer.

    The proposal goes to Drafts for you to edit and move to the Outbox (--send: to the Outbox at once); each
    standard is a numbered line she can answer with "fine" or a new value. The daemon reads her answer and
    tells you; --apply then writes it into the policy file, keeping its comments."""
    if sum((send, apply_answer, print_only)) > 1:
        raise UserError([Problem("agree", "", "--send, --apply and --print go one at a time")])
    if again and (apply_answer or print_only):
        raise UserError([Problem("--again", "", "goes with proposing (alone or with --send), not --apply or --print")])
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
    click.echo(draft(settings, str(config or default_config_path()), loaded, send=send, again=again))


def register(group: click.Group) -> None:
    group.add_command(agree_command)
