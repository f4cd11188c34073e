"""Whether a message's Authentication-Results (RFC 8601, as the student's own provider stamps them) let it count as
mail from a given address: the one check every path that records a person's answer asks (a meeting answer, her
answer to a suggestion, a reply that releases held mail, an answer to an agreement proposal).

DMARC decides where it names the From domain it checked (``header.from``): ``fail`` is no answer, ``pass`` for her
domain is one, a result about another domain is no answer. Without such a DMARC result, DKIM decides: a failed
signature is as no signature (RFC 6376 section 6.1), so ``dkim=fail`` refuses only when no signature of her own
domain passed. SPF alone never refuses (a forwarder breaks it for genuine mail). Microsoft's own verdict on a
spoofed sender, ``compauth=fail`` (composite authentication, which weighs DMARC, DKIM, SPF and more where the
domain publishes no DMARC policy), refuses too."""

from __future__ import annotations

import re

from agent.rules.addresses import ascii_domain, other_domains

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"(?:^|\s)(dkim|dmarc|compauth)\s*=\s*([a-z]+)", re.IGNORECASE)
_PROPERTY = re.compile(r"\b(header\.from|header\.d|header\.i)\s*=\s*([^\s;]+)", re.IGNORECASE)
FAILED = "Authentication-Results show a DKIM or DMARC failure"
SPOOFED = "Authentication-Results say the sender is spoofed (compauth=fail)"


def _results(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, result, properties) of each DKIM, DMARC and compauth result in ``text``, comments dropped."""
    found = []
    for piece in _COMMENT.sub(" ", _COMMENT.sub(" ", text)).split(";"):
        match = _RESULT.search(piece)
        if match:
            props = {name.lower(): value for name, value in _PROPERTY.findall(piece[match.end() :])}
            found.append((match.group(1).lower(), match.group(2).lower(), props))
    return found


def _domain(value: str) -> str:
    domain = value.rpartition("@")[2].strip().rstrip(".")
    return ascii_domain(domain) or domain.lower()


def auth_problem(results: str | None, address: str) -> str | None:
    """Why ``results`` (all Authentication-Results values of a message, decoded) say it is not from ``address``,
    or None when they do not."""
    if not results:
        return None
    checked = _results(results)
    if other_domains([p["header.from"] for _, _, p in checked if "header.from" in p], address):
        return "Authentication-Results were about another From domain than the sender's"
    dmarc = [(result, props) for method, result, props in checked if method == "dmarc"]
    if any(result == "fail" for result, _ in dmarc):
        return FAILED
    if any(method == "compauth" and result == "fail" for method, result, _ in checked):
        return SPOOFED
    if any(result == "pass" and "header.from" in props for result, props in dmarc):
        return None  # DMARC passed for her domain (another one was refused above)
    own = _domain(address)
    signatures = [(result, props) for method, result, props in checked if method == "dkim"]
    signed = any(r == "pass" and _domain(p.get("header.d") or p.get("header.i", "")) == own for r, p in signatures)
    if any(result == "fail" for result, _ in signatures) and not signed:
        return FAILED
    return None
