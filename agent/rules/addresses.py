"""One spelling per address: how every part of the agent compares an address to a mentor's (and to another).

A domain has one identity however it is written (RFC 5890, IDNA: ``exämple.org`` = ``xn--exmple-cua.org``) and
in any case, and never becomes another domain: IDNA2008 with the UTS 46 non-transitional mapping, as registries and
mail programs write it (``straße`` is ``xn--strae-oqa``; Python's built-in ``idna`` codec, IDNA 2003, would make it
``strasse``, someone else's domain); the local part is compared without case, as the rest of the agent always
did. The form kept is the ASCII one (A-labels), which is also what goes into ``RCPT TO`` without needing
SMTPUTF8; only a local part beyond ASCII needs it (RFC 6531).
"""

from __future__ import annotations

import idna


def ascii_domain(domain: str) -> str | None:
    """``domain`` in its ASCII form (A-labels, lowercase, no root dot), or None when it is no valid IDN."""
    domain = domain.strip().rstrip(".")
    if domain.isascii() and "xn--" not in domain.lower():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return None


def _ascii_domain(domain: str) -> str:
    # not a valid IDN: compared as written (lowercased), never an error here and never mapped to another domain
    return ascii_domain(domain) or domain.strip().rstrip(".").lower()


def normal_address(address: str) -> str:
    """``address`` as the agent compares it: trimmed, lowercased, its domain in IDNA ASCII form."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.lower()}@{_ascii_domain(domain)}"


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (already :func:`normal_address`) can only be sent with SMTPUTF8 (RFC 6531)."""
    return not address.isascii()
