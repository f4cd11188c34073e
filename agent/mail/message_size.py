"""The largest message the mail server said it takes (EHLO SIZE, RFC 1870), as last heard by this process: a digest
is cut to it (:func:`agent.reconcile.digest_delivery.digest_limit`)."""

from __future__ import annotations

import aiosmtplib

from agent.config.settings import Smtp

# (host, port) -> the largest message the server said it takes (EHLO SIZE, RFC 1870), as last heard in this process
_ADVERTISED: dict[tuple[str, int], int] = {}


# (host, port) -> less than the size of a message the server refused for its size (552): it takes less than it says
_REFUSED: dict[tuple[str, int], int] = {}


def advertised_size(smtp: Smtp) -> int | None:
    """The largest message ``smtp``'s server takes, as far as the agent knows: what it said last time it greeted the
    agent (EHLO SIZE), or less when it refused a smaller one for its size; None: neither."""
    key = (smtp.host, smtp.port)
    known = [size for size in (_ADVERTISED.get(key), _REFUSED.get(key)) if size is not None]
    return min(known) if known else None


def note_size(smtp: Smtp, client: aiosmtplib.SMTP) -> None:
    """What the server's greeting said of SIZE (after EHLO; nothing is learned before it)."""
    if client.is_ehlo_or_helo_needed:
        return
    key = (smtp.host, smtp.port)
    value = client.esmtp_extensions.get("size")
    try:
        size = int(str(value).split()[0]) if value is not None else 0
    except (ValueError, IndexError):
        return
    if size > 0:
        _ADVERTISED[key] = size
    else:  # no SIZE, or SIZE 0: no limit said
        _ADVERTISED.pop(key, None)


def refused_as_too_large(reply: str) -> bool:
    """Whether a 5xx reply refuses a message for its size (RFC 1870: 552; 5.3.4 "message too big for system"), not
    her mailbox for being full (5.2.2, "mailbox size limit exceeded" among its wordings)."""
    words = reply.lower()
    if any(word in words for word in ("5.2.2", "mailbox", "quota", "storage")):  # hers is full, not this one too large
        return False
    said = ("5.3.4", "size", "too large", "too big", "too much")
    return reply.startswith("552") and any(word in words for word in said)


def learn_size(smtp: Smtp, refused: int) -> None:
    """A message of ``refused`` bytes was refused for its size: the server takes less than that, whatever it said,
    then or in a later greeting."""
    key = (smtp.host, smtp.port)
    _REFUSED[key] = min(_REFUSED.get(key, refused), refused * 9 // 10)
