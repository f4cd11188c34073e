"""One spelling per address: how every part of the agent compares an address to a mentor's (and to another).

A domain has one identity however it is written (RFC 5890, IDNA: ``exämple.org`` = ``xn--exmple-cua.org``) and
in any case; the local part is compared without case, as the rest of the agent always did. The form kept is the
ASCII one (A-labels), which is also what goes into ``RCPT TO`` without needing SMTPUTF8; only a local part beyond
ASCII needs it (RFC 6531).
"""

from __future__ import annotations


def _ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii() and "xn--" not in domain:
        return domain
    try:
        labels = [label.encode("idna").decode("ascii") if label else label for label in domain.split(".")]
    except UnicodeError:  # not a valid IDN: compared as written (lowercased), never an error here
        return domain
    return ".".join(labels).lower()


def normal_address(address: str) -> str:
    """``address`` as the agent compares it: trimmed, lowercased, its domain in IDNA ASCII form."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.lower()}@{_ascii_domain(domain)}"


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (already :func:`normal_address`) can only be sent with SMTPUTF8 (RFC 6531)."""
    return not address.isascii()
