"""A refused SMTP login stops all sending: the gate (tried again at long intervals, before anything is claimed),
what was claimed goes back to Scheduled untouched, and the student gets one notice (:mod:`agent.rules.refusals`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.errors import LoginRefused, SignInNeeded, TlsProblem
from agent.mail.smtp import try_login
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import out_of_sending
from agent.rules.refusals import schedule
from agent.store.ledger import SCHEDULED, Row

log = logging.getLogger("mentor_agent.delivery")


async def smtp_open(world: World) -> bool:
    """Whether sending may go on: yes, unless the SMTP login was refused and its next try has not come or
    fails again. That try logs in only, before anything is claimed, so a refusal moves no message."""
    gate = world.smtp_gate
    now = world.now()
    if not gate.may_try(now):
        return False
    if not gate.closed:
        return True
    if gate.refusal is not None and gate.refusal.signed_out and world.smtp_grant() == gate.refusal.grant:
        gate.postpone(now)  # no new sign-in yet: the grant that failed is not tried again, and nothing is logged
        return False
    try:
        await try_login(world.settings.smtp, world.smtp_login())
    except (LoginRefused, TlsProblem) as error:
        refusal = gate.refused(now, error, world.smtp_grant() if isinstance(error, SignInNeeded) else "")
        log.warning(
            "SMTP %s again (try %d): %s; nothing is sent; next try at %s",
            refusal.what,
            refusal.tries,
            error,
            refusal.next_try.isoformat(timespec="seconds"),
        )
        world.ledger.set_status(**gate.status())
        return False
    except Exception as error:  # the server cannot be reached at all: we still do not know
        later = gate.postpone(now)
        log.warning(
            "SMTP login not tried again: %s; next try at %s",
            error,
            later.next_try.isoformat(timespec="seconds") if later else "once a message is due",
        )
        world.ledger.set_status(**gate.status())
        return False
    ended = gate.worked()
    log.info(
        "SMTP login works again (%s since %s): sending resumes",
        ended.what if ended else "refused",
        ended.since.isoformat(timespec="seconds") if ended else "?",
    )
    world.ledger.set_status(**gate.status())
    world.ledger.log("smtp login works", detail="sending resumes")
    return True


async def put_back(world: World, rows: Sequence[Row], error: LoginRefused | TlsProblem) -> None:
    """Claimed but not sent (the login was refused first): back to Scheduled as they were, to go later."""
    folders = world.folders
    for row in rows:
        new_uid = await out_of_sending(world, row, folders.scheduled)
        world.ledger.update(
            row.key, state=SCHEDULED, folder=folders.scheduled, uid=new_uid, detail=f"not sent yet: {error}"
        )
        world.ledger.log("waiting", mentor=row.mentor, message=row.key, detail=f"SMTP: {error}")


async def smtp_refused(world: World, error: LoginRefused | TlsProblem, rows: Sequence[Row]) -> None:
    """Sending stops: the one notice, a log line, and the state ``status`` shows."""
    gate = world.smtp_gate
    if isinstance(error, SignInNeeded):
        await _smtp_signed_out(world, error, rows)
        return
    refusal = gate.refused(world.now(), error)
    at = refusal.next_try.isoformat(timespec="seconds")
    log.warning(
        "SMTP %s: %s; sending stops, every waiting message stays where it is; next try at %s", refusal.what, error, at
    )
    world.ledger.set_status(**gate.status())
    world.ledger.log("smtp refused", detail=str(error))
    minutes = ", ".join(f"{s / 60:g}" for s in schedule()[:-1])
    lines = [
        f"The outgoing mail server did not let mentor-agent in: {error}.",
        "Nothing is sent until this works again. Every waiting message stays where it is (Scheduled or the "
        "Outbox): none is lost, none goes twice, and there is nothing to move back."
        + (f" Waiting now: {len(rows)} message(s) that were due." if rows else ""),
        f"mentor-agent tries again after {minutes} minutes, then every {schedule()[-1] / 60:g} minutes, and "
        "sends as soon as it works. If your password changed, update it where mentor-agent reads it "
        "(password_command, the keyring or the systemd credential); `mentor-agent status` shows the next try.",
    ]
    title = (
        "Not sending: the mail server refused the login"
        if isinstance(error, LoginRefused)
        else "Not sending: TLS with the mail server failed"
    )
    await world.notify(title, lines)


async def _smtp_signed_out(world: World, error: SignInNeeded, rows: Sequence[Row]) -> None:
    """The sign-in for sending expired or was revoked: one notice, one log line; no retry until a new sign-in."""
    world.smtp_gate.refused(world.now(), error, world.smtp_grant())
    log.error("%s; nothing is sent until then, and mentor-agent goes on by itself after it", error)
    world.ledger.set_status(**world.smtp_gate.status())
    world.ledger.log("smtp refused", detail=str(error))
    await world.notify(
        "Not sending: sign in again (mentor-agent login)",
        [
            f"Your sign-in for sending mail has expired or was revoked: {error}.",
            "Nothing is sent until you sign in again. Every waiting message stays where it is (Scheduled or the "
            "Outbox): none is lost, none goes twice."
            + (f" Waiting now: {len(rows)} message(s) that were due." if rows else ""),
            "Run `mentor-agent login` on the computer where mentor-agent runs; sending resumes by itself as soon "
            "as the new sign-in is saved. Sign-ins end when a password changes, when the school's IT revokes "
            'them, or — for a Google project still in "Testing" — after 7 days.',
        ],
    )
