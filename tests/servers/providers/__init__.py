"""Mail providers emulated in front of the test Dovecot: one profile per provider (Gmail, Microsoft 365,
iCloud, Yahoo, Fastmail, plain Dovecot), an IMAP proxy that behaves like each, and an SMTP side that files
submissions in Sent and enforces sending limits like the provider does. See docs/providers.md."""

from tests.servers.providers.profiles import BYE_TOKEN_EXPIRED, PROFILES, Limits, Profile, profile
from tests.servers.providers.proxy import ProviderProxy

__all__ = ["BYE_TOKEN_EXPIRED", "PROFILES", "Limits", "Profile", "ProviderProxy", "profile"]
