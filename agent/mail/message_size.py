"""The largest message the mail server said it takes (EHLO SIZE, RFC 1870), as last heard by this process: a digest
is cut to it (:func:`agent.reconcile.digest_delivery.digest_limit`)."""

from __future__ import annotations

import aiosmtplib

from agent.config.settings import Smtp

# (host, port) -> the largest message the server said it takes (EHLO SIZE, RFC 1870), as last heard in this process
_ADVERTISED: dict[tuple[str, int], int] = {}


def advertised_size(smtp: Smtp) -> int | None:
    """The largest message ``smtp``'s server said it takes, last time it greeted the agent; None: it never said,
    or it takes any size."""
    return _ADVERTISED.get((smtp.host, smtp.port))


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
    """Whether a 5xx reply refuses a message for its size (RFC 1870: 552; 5.3.4 "message too big for system")."""
    words = reply.lower()
    return reply.startswith("552") and (
        "5.3.4" in words or any(w in words for w in ("size", "too large", "too big", "too much"))
    )


def learn_size(smtp: Smtp, refused: int) -> None:
    """A message of ``refused`` bytes was refused for its size: the server takes less than that, whatever it said."""
    key = (smtp.host, smtp.port)
    _ADVERTISED[key] = min(_ADVERTISED.get(key, refused), refused * 9 // 10)
