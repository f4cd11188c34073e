"""One spelling per address: how every part of the agent compares an address to a mentor's (and to another).

A domain has one identity however it is written (RFC 5890, IDNA: ``exämple.org`` = ``xn--exmple-cua.org``) and
in any case, and never becomes another domain: IDNA2008 with the UTS 46 non-transitional mapping, as registries and
mail programs write it (``straße`` is ``xn--strae-oqa``; Python's built-in ``idna`` codec, IDNA 2003, would make it
``strasse``, someone else's domain); the local part is compared without case, as the rest of the agent always
did. The form kept is the ASCII one (A-labels), which is also what goes into ``RCPT TO`` without needing
SMTPUTF8; only a local part beyond ASCII needs it (RFC 6531).
"""

from __future__ import annotations

from email import errors
from email import policy as email_policy

import idna

# RFC 6532 allows a local part beyond ASCII in a UTF-8 header; every other defect makes From name nobody
_ALLOWED_DEFECTS = (errors.NonASCIILocalPartDefect,)


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


def author(from_value: str) -> str:
    """Whom a message is from, :func:`normal_address`-ed: the single address the header registry reads in the From
    field ``from_value`` (decoded text). "" when From names no address or more than one, or does not parse cleanly
    (``ana@x.org <mallory@y.org>``: Python's ``parseaddr`` would take the first, the sender's choice): such mail is
    from nobody the agent knows — never a mentor's answer."""
    try:
        header = email_policy.default.header_factory("From", " ".join(from_value.split()))
    except Exception:  # the registry is lenient; anything it raises is a From that names nobody
        return ""
    addresses = getattr(header, "addresses", ())
    if len(addresses) != 1 or any(not isinstance(d, _ALLOWED_DEFECTS) for d in header.defects):
        return ""
    spec = str(addresses[0].addr_spec)
    return normal_address(spec) if "@" in spec and "<" not in spec else ""


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (already :func:`normal_address`) can only be sent with SMTPUTF8 (RFC 6531)."""
    return not address.isascii()
