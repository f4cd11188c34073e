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
