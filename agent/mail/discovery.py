"""Finding a mail domain's IMAP and SMTP servers, for `mentor-agent setup`, in the order Thunderbird uses:

1. the providers' own domains (:mod:`agent.config.presets`: gmail.com, outlook.com, icloud.com, …);
2. the domain's autoconfig file (Thunderbird's format, ``config-v1.1.xml``), from
   ``https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=…``, then
   ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``;
3. RFC 6186 SRV records: ``_imaps._tcp`` / ``_imap._tcp``, ``_submissions._tcp`` / ``_submission._tcp``;
4. the domain's MX records, for a school's own domain hosted at Google Workspace or Microsoft 365.

Nothing found is not an error: setup then asks. Where it looks is injectable (:class:`Where`): the tests give a
loopback HTTP server's URLs and a loopback DNS server, so that nothing here reaches the internet in a test.
"""

from __future__ import annotations

import ssl
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.rdatatype
import dns.resolver

from agent.config.presets import (
    Found,
    OAuthKind,
    Security,
    Server,
    by_domain,
    by_imap_host,
    by_mx,
    domain_of,
    found_from,
)

MAX_BYTES = 1_000_000  # an autoconfig file is a few kB


def default_urls(domain: str, address: str) -> list[str]:
    quoted = urllib.parse.quote(address, safe="@")
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={quoted}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


@dataclass(frozen=True)
class Where:
    """Where discovery looks: the autoconfig URLs for a domain and address, and the DNS server (None: the system's)."""

    urls: Callable[[str, str], list[str]] = default_urls
    nameserver: tuple[str, int] | None = None
    timeout: float = 5.0
    tried: list[str] = field(default_factory=list, compare=False)  # what was asked, for the student to see

    @classmethod
    def loopback(cls, base_url: str = "", dns: str = "") -> Where:
        """``base_url`` stands for both autoconfig hosts (``{domain}`` in it is replaced); ``dns`` is HOST:PORT."""
        urls = default_urls
        if base_url:
            base = base_url.rstrip("/")

            def urls(domain: str, address: str) -> list[str]:
                root = base.replace("{domain}", domain)
                return [
                    f"{root}/mail/config-v1.1.xml?emailaddress={urllib.parse.quote(address, safe='@')}",
                    f"{root}/.well-known/autoconfig/mail/config-v1.1.xml",
                ]

        nameserver = None
        if dns:
            host, _, port = dns.rpartition(":")
            nameserver = (host or dns, int(port) if host else 53)
        return cls(urls=urls, nameserver=nameserver)


def discover(address: str, where: Where | None = None) -> Found | None:
    """The servers for ``address``, or None when none of the four ways found both IMAP and SMTP."""
    where = where or Where()
    preset = by_domain(address)
    if preset is not None:
        return found_from(preset)
    domain = domain_of(address)
    for url in where.urls(domain, address):
        where.tried.append(url)
        found = _autoconfig(url, address, where.timeout)
        if found is not None:
            return found
    resolver = _resolver(where)
    found = _srv(domain, resolver, where)
    if found is not None:
        return found
    where.tried.append(f"MX {domain}")
    preset = by_mx(_lookup(resolver, domain, "MX"))
    if preset is not None:
        return found_from(preset, f"MX records of {domain} ({preset.title})")
    return None


# -- autoconfig ---------------------------------------------------------------------------------------------------


def _fetch(url: str, timeout: float) -> bytes | None:
    if not url.startswith(("https://", "http://127.", "http://[::1]", "http://localhost")):
        return None  # autoconfig over plain HTTP could be forged on the way: only loopback (the tests) may use it
    request = urllib.request.Request(url, headers={"User-Agent": "mentor-agent setup"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl.create_default_context()) as answer:
            if answer.status != 200:
                return None
            return bytes(answer.read(MAX_BYTES + 1))[:MAX_BYTES]
    except (OSError, ValueError):  # URLError, HTTPError, timeouts, TLS failures: this source has nothing
        return None


_SOCKET: dict[str, Security] = {"SSL": "tls", "TLS": "tls", "STARTTLS": "starttls", "PLAIN": "plain"}


def parse_autoconfig(data: bytes, address: str, source: str = "autoconfig") -> Found | None:
    """IMAP and SMTP from a Thunderbird ``clientConfig`` document (the first server of each kind that works)."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    provider = root.find("emailProvider")
    if provider is None:
        return None

    def servers(tag: str, kind: str) -> list[tuple[Server, bool]]:
        found = []
        for element in provider.findall(tag):
            if element.get("type") != kind:
                continue
            host = (element.findtext("hostname") or "").strip()
            port = (element.findtext("port") or "").strip()
            security = _SOCKET.get((element.findtext("socketType") or "").strip().upper())
            methods = {(m.text or "").strip() for m in element.findall("authentication")}
            if not host or not port.isdigit() or security is None:
                continue
            found.append(
                (Server(host.replace("%EMAILDOMAIN%", domain_of(address)), int(port), security), "OAuth2" in methods)
            )
        return sorted(found, key=lambda s: s[0].security == "plain")  # encrypted first, in the file's order

    imap, smtp = servers("incomingServer", "imap"), servers("outgoingServer", "smtp")
    if not imap or not smtp:
        return None
    oauth2: OAuthKind = ""
    if imap[0][1]:
        preset = by_imap_host(imap[0][0].host)
        oauth2 = preset.oauth2 if preset else ""
    return Found(source=source, imap=imap[0][0], smtp=smtp[0][0], oauth2=oauth2)


def _autoconfig(url: str, address: str, timeout: float) -> Found | None:
    data = _fetch(url, timeout)
    return None if data is None else parse_autoconfig(data, address, f"autoconfig {url.split('?')[0]}")


# -- DNS ----------------------------------------------------------------------------------------------------------


def _resolver(where: Where) -> dns.resolver.Resolver:
    if where.nameserver is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [where.nameserver[0]]
        resolver.port = where.nameserver[1]
    resolver.lifetime = where.timeout
    return resolver


def _lookup(resolver: dns.resolver.Resolver, name: str, kind: str) -> list[str]:
    """MX hosts (by preference) or SRV "host port" entries (by priority, then weight), "" for none."""
    try:
        answer = resolver.resolve(name, kind, raise_on_no_answer=False)
    except (dns.exception.DNSException, OSError):
        return []
    rrset = answer.rrset
    if rrset is None:
        return []
    if rrset.rdtype == dns.rdatatype.MX:
        return [str(r.exchange).rstrip(".") for r in sorted(rrset, key=lambda r: r.preference)]
    records = sorted(rrset, key=lambda r: (r.priority, -r.weight))
    return [f"{str(r.target).rstrip('.')} {r.port}" for r in records]


def _first_srv(
    resolver: dns.resolver.Resolver, domain: str, services: list[tuple[str, Security]], where: Where
) -> Server | None:
    for service, security in services:
        name = f"{service}._tcp.{domain}"
        where.tried.append(f"SRV {name}")
        for entry in _lookup(resolver, name, "SRV"):
            host, _, port = entry.rpartition(" ")
            if host and host != "." and port.isdigit() and int(port):  # "." means: no such service (RFC 2782)
                return Server(host, int(port), security)
    return None


def _srv(domain: str, resolver: dns.resolver.Resolver, where: Where) -> Found | None:
    imap = _first_srv(resolver, domain, [("_imaps", "tls"), ("_imap", "starttls")], where)
    if imap is None:
        return None
    smtp = _first_srv(resolver, domain, [("_submissions", "tls"), ("_submission", "starttls")], where)
    if smtp is None:
        return None
    return Found(source=f"DNS SRV records of {domain}", imap=imap, smtp=smtp)
