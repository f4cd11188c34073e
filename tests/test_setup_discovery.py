"""Where `mentor-agent setup` finds the servers: presets, autoconfig (loopback HTTP), SRV and MX (loopback DNS)."""

from __future__ import annotations

import pytest

from agent.config.presets import PRESETS, Server, by_domain
from agent.mail.discovery import Where, default_urls, discover, parse_autoconfig
from agent.rules.limits import TABLE, limits_for
from tests.servers.autoconfig import AutoconfigServer, clientconfig
from tests.servers.dns_server import DnsServer


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_every_presets_smtp_host_has_the_sending_limits_of_its_provider(key: str) -> None:
    preset = PRESETS[key]
    assert preset.provider in TABLE
    found = limits_for("auto", preset.smtp.host)
    assert found is not None and found.provider == preset.provider


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("sam@gmail.com", "gmail"),
        ("Sam@Outlook.com", "outlook.com"),
        ("sam@hotmail.com", "outlook.com"),
        ("sam@icloud.com", "icloud"),
        ("sam@me.com", "icloud"),
        ("sam@yahoo.com", "yahoo"),
        ("sam@fastmail.com", "fastmail"),
    ],
)
def test_a_providers_own_domain_is_found_without_asking_anyone(address: str, key: str) -> None:
    where = Where.loopback(base_url="http://127.0.0.1:9", dns="127.0.0.1:9")  # would fail if asked
    found = discover(address, where)
    assert found is not None and found.preset == key and found.source == f"preset {PRESETS[key].title}"
    assert where.tried == []


def test_the_default_autoconfig_urls_are_thunderbirds() -> None:
    assert default_urls("uni.example", "sam+x@uni.example") == [
        "https://autoconfig.uni.example/mail/config-v1.1.xml?emailaddress=sam%2Bx@uni.example",
        "https://uni.example/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


def test_autoconfig_from_the_first_url_that_answers() -> None:
    xml = clientconfig("uni.example", ("imap.%EMAILDOMAIN%", 993, "SSL"), ("smtp.uni.example", 587, "STARTTLS"))
    with AutoconfigServer({"/.well-known/autoconfig/mail/config-v1.1.xml": xml}) as web:
        where = Where.loopback(base_url=web.url, dns="127.0.0.1:9")
        found = discover("sam@uni.example", where)
    assert found is not None
    assert found.imap == Server("imap.uni.example", 993, "tls")
    assert found.smtp == Server("smtp.uni.example", 587, "starttls")
    assert found.oauth2 == "" and found.provider == "auto"
    assert found.source == f"autoconfig {web.url}/.well-known/autoconfig/mail/config-v1.1.xml"
    assert web.requests == [
        "/mail/config-v1.1.xml?emailaddress=sam@uni.example",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


def test_autoconfig_that_asks_for_oauth_at_microsoft_signs_in_with_microsoft() -> None:
    xml = clientconfig(
        "uni.example", ("outlook.office365.com", 993, "SSL"), ("smtp.office365.com", 587, "STARTTLS"), auth="OAuth2"
    )
    found = parse_autoconfig(xml, "sam@uni.example")
    assert found is not None and found.oauth2 == "microsoft"


@pytest.mark.parametrize(
    "text",
    [b"", b"<not xml", b"<clientConfig/>", clientconfig("x.example", ("imap.x.example", 993, "SSL"), ("", 1, "SSL"))],
)
def test_a_broken_or_incomplete_autoconfig_file_finds_nothing(text: bytes) -> None:
    assert parse_autoconfig(text, "sam@x.example") is None


def test_srv_records_when_there_is_no_autoconfig() -> None:
    records = {
        ("_imaps._tcp.uni.example", "SRV"): ["10 1 993 imap2.uni.example.", "0 1 993 imap.uni.example."],
        ("_submissions._tcp.uni.example", "SRV"): ["0 0 0 ."],  # "." : not offered (RFC 2782)
        ("_submission._tcp.uni.example", "SRV"): ["0 1 587 smtp.uni.example."],
    }
    with AutoconfigServer({}) as web, DnsServer(records) as dns:
        where = Where.loopback(base_url=web.url, dns=dns.address)
        found = discover("sam@uni.example", where)
    assert found is not None
    assert found.imap == Server("imap.uni.example", 993, "tls")
    assert found.smtp == Server("smtp.uni.example", 587, "starttls")
    assert found.source == "DNS SRV records of uni.example"
    assert ("_submission._tcp.uni.example", "SRV") in dns.asked


@pytest.mark.parametrize(
    ("mx", "key"),
    [("uni-example.mail.protection.outlook.com.", "microsoft365"), ("aspmx.l.google.com.", "google-workspace")],
)
def test_a_schools_domain_hosted_at_microsoft_or_google_is_found_by_its_mx(mx: str, key: str) -> None:
    with AutoconfigServer({}) as web, DnsServer({("uni.example", "MX"): [f"10 {mx}"]}) as dns:
        found = discover("sam@uni.example", Where.loopback(base_url=web.url, dns=dns.address))
    assert found is not None and found.preset == key and found.oauth2 == PRESETS[key].oauth2
    assert found.source == f"MX records of uni.example ({PRESETS[key].title})"


def test_nothing_found_is_none_and_says_what_was_tried() -> None:
    with AutoconfigServer({}) as web, DnsServer({}) as dns:
        where = Where.loopback(base_url=web.url, dns=dns.address)
        assert discover("sam@nowhere.example", where) is None
    assert where.tried[-1] == "MX nowhere.example"
    assert "SRV _imaps._tcp.nowhere.example" in where.tried


def test_autoconfig_over_plain_http_is_never_fetched_from_outside_loopback() -> None:
    where = Where(
        urls=lambda domain, address: ["http://autoconfig.invalid/mail/config-v1.1.xml"],
        nameserver=("127.0.0.1", 9),
        timeout=0.5,
    )
    assert discover("sam@invalid.example", where) is None
    assert by_domain("sam@invalid.example") is None
