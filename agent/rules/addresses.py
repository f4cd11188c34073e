"""One spelling per address: how every part of the agent compares an address to a mentor's (and to another).

A domain has one identity however it is written (RFC 5890, IDNA: ``exämple.org`` = ``xn--exmple-cua.org``) and
in any case, and never becomes another domain: IDNA2008 with the UTS 46 non-transitional mapping, as registries and
mail programs write it (``straße`` is ``xn--strae-oqa``; Python's built-in ``idna`` codec, IDNA 2003, would make it
``strasse``, someone else's domain); the local part is compared without case, as the rest of the agent always
did, in Unicode NFC (``é`` composed or not), and never so that a character beyond ASCII becomes an ASCII one
(KELVIN SIGN is not ``k``: another mailbox, RFC 6531). The form kept is the ASCII one (A-labels), which is also
what goes into ``RCPT TO`` without needing SMTPUTF8; only a local part beyond ASCII needs it (RFC 6531).
"""

from __future__ import annotations

import re
import unicodedata
from email import errors
from email import policy as email_policy
from email.headerregistry import Address

# A local part beyond ASCII (RFC 6532) and obsolete syntax (RFC 5322 section 4: "Dr. Ana Rivera" unquoted, a
# route) are fine; any other defect (InvalidHeaderDefect: ``ana@x.org <mallory@y.org>``) makes From name nobody.
_ALLOWED_DEFECTS = (errors.NonASCIILocalPartDefect, errors.ObsoleteHeaderDefect)
# An RFC 2047 word inside a quoted display name (``"=?utf-8?Q?Ana_Rivera?=" <a@b>``) is against the letter of RFC 2047
# but what many mail programs write; the address beside it is untouched by it.
_ALLOWED_INVALID = frozenset({"encoded word inside quoted string", "missing trailing whitespace after encoded-word"})
# The common From forms, read without the registry (it costs a third of a millisecond): ``Name <a@b>``, ``a@b``.
_ATOMS = r'[^<>@\s,;:"()\[\]\\]+'
_SIMPLE = re.compile(rf'[^"<>,;:@\\()\[\]]*<({_ATOMS}@{_ATOMS})>\s*|\s*({_ATOMS}@{_ATOMS})\s*')
# A list of plain addresses (``a@b``, ``Name <a@b>``, ``<a@b>``, comma-separated): dot-atoms only, a display name
# of atext words (dots allowed), no quotes, comments, groups or routes. email.utils.getaddresses reads such a list
# the same way at a tenth of the cost; anything else is left to it (:func:`plain_addresses`).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_SPEC = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_WORD = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_PLAIN_ITEM = re.compile(rf"[ \t]*(?:({_SPEC})|(?:{_WORD}(?:[ \t]+{_WORD})*[ \t]*)?<({_SPEC})>)[ \t]*")


def plain_addresses(value: str) -> list[str] | None:
    """The addresses of a header value that lists only plain ones (see ``_PLAIN_ITEM``), as written; None for any
    other value (quotes, comments, groups, folding, 8-bit, an empty item...): read it with email.utils."""
    found: list[str] = []
    for item in value.split(","):
        match = _PLAIN_ITEM.fullmatch(item)
        if match is None:
            return None
        found.append(match.group(1) or match.group(2))
    return found


def ascii_domain(domain: str) -> str | None:
    """``domain`` in its ASCII form (A-labels, lowercase, no root dot), or None when it is no valid IDN."""
    domain = domain.strip().rstrip(".")
    if domain.isascii() and "xn--" not in domain.lower():
        return domain.lower()
    import idna  # loaded for the first domain beyond ASCII only

    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return None


def _ascii_domain(domain: str) -> str:
    # not a valid IDN: compared as written (lowercased), never an error here and never mapped to another domain
    return ascii_domain(domain) or domain.strip().rstrip(".").lower()


def _nfc(text: str) -> str:
    """``text`` in NFC, except that a character beyond ASCII whose NFC is ASCII (KELVIN SIGN is canonically ``K``,
    GREEK QUESTION MARK ``;``) is kept as written: in a local part it names another mailbox."""
    kept: list[str] = []
    run = ""
    for c in text:
        if not c.isascii() and unicodedata.normalize("NFC", c).isascii():
            kept += [unicodedata.normalize("NFC", run), c]
            run = ""
        else:
            run += c
    return "".join([*kept, unicodedata.normalize("NFC", run)])


def _lower(text: str) -> str:
    """``text`` in Unicode NFC (one spelling of ``é``, composed or not) and lowercase, where lowercasing never
    turns a character beyond ASCII into an ASCII one: KELVIN SIGN (U+212A) stays, it is not ``k`` — another
    mailbox's local part must not become Dr. Kim's."""
    if text.isascii():
        return text.lower()
    text = _nfc(text)
    return "".join(c if c.isascii() != (low := c.lower()).isascii() else low for c in text)


def normal_address(address: str) -> str:
    """``address`` as the agent compares it: trimmed, NFC, lowercased (ASCII stays ASCII, the rest stays beyond
    it), its domain in IDNA ASCII form."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return _lower(address.strip())
    return f"{_lower(local)}@{_ascii_domain(domain)}"


def _as_written(domain: str) -> bool:
    """Whether ``domain`` is written as the one DNS domain it names: each label, lowercased and in NFC, is its
    A-label or its U-label. UTS 46 would also fold a FULLWIDTH FULL STOP into a dot and drop a zero-width space or a
    soft hyphen: a From written so names another domain to the DMARC check of the student's provider, so it is
    never read as the domain it folds into."""
    domain = domain.strip().rstrip(".")
    if domain.isascii() and "xn--" not in domain.lower():
        return True
    ascii_form = ascii_domain(domain)
    if ascii_form is None:
        return True  # no IDN: compared as written, never mapped
    import idna

    try:
        unicode_form = idna.decode(ascii_form)
    except (idna.IDNAError, UnicodeError):
        return False
    written = unicodedata.normalize("NFC", domain.lower()).split(".")
    a_labels, u_labels = ascii_form.split("."), unicode_form.lower().split(".")
    return len(written) == len(a_labels) == len(u_labels) and all(
        label in pair for label, pair in zip(written, zip(a_labels, u_labels, strict=True), strict=True)
    )


def inbound_address(address: str) -> str:
    """:func:`normal_address` of an address read in mail that came in: a domain not written as the DNS domain it
    maps to (:func:`_as_written`) stays as written, lowercased: an address of its own, nobody the agent knows."""
    local, at, domain = address.strip().rpartition("@")
    if at and not _as_written(domain):
        return f"{_lower(local)}@{domain.strip().lower()}"
    return normal_address(address)


def author(from_value: str) -> str:
    """Whom a message is from, :func:`normal_address`-ed: the single address the header registry reads in the From
    field ``from_value`` (decoded text). "" when From names no address or more than one, or does not parse cleanly
    (``ana@x.org <mallory@y.org>``: Python's ``parseaddr`` would take the first, the sender's choice): such mail is
    from nobody the agent knows — never a mentor's answer."""
    simple = _SIMPLE.fullmatch(from_value)
    if simple:
        return inbound_address(simple.group(1) or simple.group(2))
    try:
        header = email_policy.default.header_factory("From", " ".join(from_value.split()))
    except Exception:  # the registry is lenient; anything it raises is a From that names nobody
        return ""
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1 or any(not _allowed(defect) for defect in header.defects):
        return ""
    spec = str(addresses[0].addr_spec)
    return inbound_address(spec) if "@" in spec and "<" not in spec else ""


def _allowed(defect: Exception) -> bool:
    return isinstance(defect, _ALLOWED_DEFECTS) or (
        type(defect) is errors.InvalidHeaderDefect and str(defect) in _ALLOWED_INVALID
    )


def other_domains(domains: list[str], address: str) -> set[str]:
    """Those of ``domains`` (written in any case, IDNA form, with a root dot) that are not ``address``'s domain."""
    own = _ascii_domain(address.rpartition("@")[2])
    return {domain for domain in domains if _ascii_domain(domain) != own}


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (already :func:`normal_address`) can only be sent with SMTPUTF8 (RFC 6531)."""
    return not address.isascii()
