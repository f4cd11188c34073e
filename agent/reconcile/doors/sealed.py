"""Encrypted drafts: Thunderbird (OpenPGP, S/MIME) and other programs store a draft encrypted to her own key. The
agent cannot read it, and taking it would send the mentor what only she can open: such a draft is never taken by
the star door. It stays in Drafts, flagged as she left it, and she is told once (per draft) to send it from her
mail program herself."""

from __future__ import annotations

import email
import email.policy
import logging

from agent.mail.port import HeaderInfo
from agent.reconcile.context import World
from agent.rules.envelope import Envelope

log = logging.getLogger("mentor_agent.drafts")
TOLD = "draft encrypted told"
ENCRYPTED = {"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}


def is_encrypted(info: HeaderInfo) -> bool:
    """Whether the draft's top-level content type is an encrypted one (OpenPGP/MIME, S/MIME)."""
    headers = email.message_from_bytes(info.headers, policy=email.policy.compat32)
    return headers.get_content_type() in ENCRYPTED


async def leave_encrypted(world: World, folder: str, envelope: Envelope) -> None:
    """Tell her, once per draft, that the flagged encrypted draft stays where it is."""
    if world.ledger.logged(TOLD, envelope.key):
        return
    world.ledger.log(TOLD, message=envelope.key, detail=envelope.subject)
    log.info("a flagged draft in %s is encrypted: left alone", folder)
    await world.notify(
        f"Not taken: an encrypted draft in {folder}",
        [
            f"You flagged an encrypted draft in {folder} (subject shown as “{envelope.subject or '(no subject)'}”). "
            "mentor-agent cannot read it, and taking it would send your mentor a message only you can open, so it "
            f"was not taken: it is still in {folder}, flagged.",
            "To send it, send it from your mail program yourself, or save it again without encryption and flag it.",
        ],
        about=envelope.message_id,
    )
