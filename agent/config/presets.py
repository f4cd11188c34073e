"""Where the big mail providers keep their servers, as data: what `mentor-agent setup` offers before it asks.

Each preset names the IMAP and SMTP servers, how to sign in (``oauth2``: the built-in sign-in of
:mod:`agent.mail.oauth`; empty: an app password) and whose sending limits apply (``provider``: a key of
:data:`agent.rules.limits.TABLE`, the value of ``[smtp] provider``). Folder names are left to the server's
SPECIAL-USE attributes, which every provider here sets or which the agent finds by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Security = Literal["tls", "starttls", "plain"]
OAuthKind = Literal["", "microsoft", "google"]


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: Security

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    domains: tuple[str, ...]  # addresses at these domains use this preset without asking
    imap: Server
    smtp: Server
    oauth2: OAuthKind  # how to sign in; "" means a password (an app password at these providers)
    provider: str  # [smtp] provider: whose sending limits apply
    tenant: str = "organizations"  # Microsoft only: "organizations" (work or school) or "consumers"
    app_passwords: str = ""  # where the student makes an app password, when the provider wants one
    mx: tuple[str, ...] = ()  # MX host suffixes that show a domain is hosted here (a school's own domain)


@dataclass(frozen=True)
class Found:
    """Servers for an address, and where they were found."""

    source: str  # "preset Gmail", "autoconfig https://…", "DNS SRV records", "MX records (Microsoft 365)"
    imap: Server
    smtp: Server
    oauth2: OAuthKind = ""
    provider: str = "auto"
    tenant: str = "organizations"
    preset: str = ""  # the preset's key, if one
    notes: tuple[str, ...] = field(default_factory=tuple)


_MS_IMAP = Server("outlook.office365.com", 993, "tls")

PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            "gmail",
            "Gmail",
            ("gmail.com", "googlemail.com"),
            Server("imap.gmail.com", 993, "tls"),
            Server("smtp.gmail.com", 465, "tls"),
            oauth2="google",
            provider="google",
            app_passwords="https://myaccount.google.com/apppasswords (needs 2-step verification)",
        ),
        Preset(
            "google-workspace",
            "Google Workspace",
            (),
            Server("imap.gmail.com", 993, "tls"),
            Server("smtp.gmail.com", 465, "tls"),
            oauth2="google",
            provider="google",
            mx=("google.com", "googlemail.com"),
        ),
        Preset(
            "microsoft365",
            "Microsoft 365",
            (),
            _MS_IMAP,
            Server("smtp.office365.com", 587, "starttls"),
            oauth2="microsoft",
            provider="microsoft365",
            tenant="organizations",
            mx=("mail.protection.outlook.com",),
        ),
        Preset(
            "outlook.com",
            "Outlook.com",
            ("outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.de", "hotmail.co.uk", "live.co.uk"),
            _MS_IMAP,
            Server("smtp-mail.outlook.com", 587, "starttls"),
            oauth2="microsoft",
            provider="outlook.com",
            tenant="consumers",
        ),
        Preset(
            "icloud",
            "iCloud Mail",
            ("icloud.com", "me.com", "mac.com"),
            Server("imap.mail.me.com", 993, "tls"),
            Server("smtp.mail.me.com", 587, "starttls"),
            oauth2="",
            provider="icloud",
            app_passwords="https://account.apple.com, Sign-In and Security, App-Specific Passwords",
        ),
        Preset(
            "yahoo",
            "Yahoo Mail",
            ("yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr"),
            Server("imap.mail.yahoo.com", 993, "tls"),
            Server("smtp.mail.yahoo.com", 465, "tls"),
            oauth2="",
            provider="yahoo",
            app_passwords="https://login.yahoo.com/account/security, Generate app password",
        ),
        Preset(
            "fastmail",
            "Fastmail",
            ("fastmail.com", "fastmail.fm", "fastmail.net", "fastmail.org", "messagingengine.com"),
            Server("imap.fastmail.com", 993, "tls"),
            Server("smtp.fastmail.com", 465, "tls"),
            oauth2="",
            provider="fastmail",
            app_passwords="https://app.fastmail.com/settings/security/apps, New app password",
        ),
    )
}


def found_from(preset: Preset, source: str = "") -> Found:
    return Found(
        source=source or f"preset {preset.title}",
        imap=preset.imap,
        smtp=preset.smtp,
        oauth2=preset.oauth2,
        provider=preset.provider,
        tenant=preset.tenant,
        preset=preset.key,
    )


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


def by_domain(address: str) -> Preset | None:
    """The preset for an address at one of the providers' own domains (gmail.com, outlook.com, …)."""
    domain = domain_of(address)
    return next((p for p in PRESETS.values() if domain in p.domains), None)


def by_mx(hosts: list[str]) -> Preset | None:
    """The preset whose MX suffix one of ``hosts`` carries (a school's domain hosted at Google or Microsoft)."""
    for host in hosts:
        name = host.lower().rstrip(".")
        for preset in PRESETS.values():
            if any(name == s or name.endswith("." + s) for s in preset.mx):
                return preset
    return None


def by_imap_host(host: str) -> Preset | None:
    """The preset whose IMAP server ``host`` is (an autoconfig file that points at Google or Microsoft)."""
    name = host.lower().rstrip(".")
    return next((p for p in PRESETS.values() if p.imap.host == name and p.mx), None)
