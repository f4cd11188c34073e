"""The provider proxy itself: each behaviour of each profile, seen by a plain imapclient (what a mail app sees).

Sources: MailKit #702 and node-imap #602 (Microsoft keeps no custom keywords), MailKit #970 (iCloud refuses
SELECT (CONDSTORE)), MailKit #1405 (Yahoo's COPYUID out of order), imapsync #250 (Microsoft's
BYE AccessTokenExpired); docs/providers.md has the rest.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from tests.servers.providers import BYE_TOKEN_EXPIRED, PROFILES, Limits, ProviderProxy
from tests.servers.providers.fixtures import Stack, provider_dovecots, provider_stack

__all__ = ["provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers

Make = Callable[..., Stack]


def raw(subject: str, to: str = "someone@example.org") -> bytes:
    message = EmailMessage()
    message["From"] = "sam@med.example.edu"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="med.example.edu")
    message.set_content("hello\n")
    return message.as_bytes()


def answer(client: IMAPClient, *words: str) -> str:
    """OK, NO or BAD: the server's answer to a raw command (``UID ...`` commands too)."""
    imap = client._imap
    try:
        if words[0] == "UID":
            typ, _ = imap.uid(*words[1:])
        else:
            typ, _ = imap._simple_command(*words)
    except imaplib.IMAP4.error as error:
        found = re.search(r"error: (BAD|NO)\b", str(error))
        return found.group(1) if found else "ERROR " + str(error)
    return str(typ)


def caps(client: IMAPClient) -> set[str]:
    return {c.decode().upper() for c in client.capabilities()}


def subjects_by_uid(stack: Stack, folder: str) -> dict[int, str]:
    found = {}
    for uid, data in stack.dovecot.messages(stack.user, folder).items():
        match = re.search(rb"^Subject: (.*?)\r?$", data, re.MULTILINE)
        found[uid] = match.group(1).decode() if match else ""
    return found


# -- capabilities ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("dovecot", {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "SPECIAL-USE"}, {"STARTTLS"}),
        ("gmail", {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "X-GM-EXT-1", "APPENDLIMIT=35651584"}, {"STARTTLS"}),
        ("microsoft365", {"IDLE", "MOVE", "UIDPLUS"}, {"CONDSTORE", "QRESYNC", "SPECIAL-USE", "STARTTLS"}),
        ("icloud", {"IDLE", "UIDPLUS", "CONDSTORE"}, {"MOVE", "SPECIAL-USE", "STARTTLS"}),
        ("yahoo", {"IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE"}, {"CONDSTORE", "QRESYNC"}),
        ("fastmail", {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "QRESYNC", "SPECIAL-USE"}, {"STARTTLS"}),
    ],
)
def test_capabilities_are_the_providers_in_greeting_and_after_login(
    provider_stack: Make, name: str, present: set[str], absent: set[str]
) -> None:
    stack = provider_stack(PROFILES[name])
    client = IMAPClient(stack.proxy.host, port=stack.proxy.port, ssl=False, timeout=10)
    try:
        greeting = caps(client)  # from the greeting's [CAPABILITY ...]
        assert "STARTTLS" not in greeting and "IMAP4REV1" in greeting
        client.login(stack.user.username, stack.user.password)
        after_login = caps(client)  # from OK [CAPABILITY ...] after LOGIN
        _typ, data = client._imap.capability()
        explicit = {c.upper() for c in data[-1].decode().split()}
    finally:
        client.shutdown()
    for seen in (after_login, explicit):
        assert present <= seen, present - seen
        assert not absent & seen, absent & seen


def test_a_command_the_provider_lacks_is_refused_with_bad(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["icloud"])  # no MOVE
    with stack.client() as client:
        client.select_folder("INBOX")
        client.append("INBOX", raw("one"))
        client.create_folder("Elsewhere")
        assert not client.has_capability("MOVE")
        assert answer(client, "UID", "MOVE", "1", '"Elsewhere"') == "BAD"
        assert answer(client, "MOVE", "1", '"Elsewhere"') == "BAD"
        client.copy([1], "Elsewhere")  # COPY works; the original stays
    assert stack.proxy.kinds() == ["refused", "refused"]
    assert len(stack.dovecot.messages(stack.user, "INBOX")) == 1 == len(stack.dovecot.messages(stack.user, "Elsewhere"))


def test_icloud_advertises_condstore_but_refuses_select_condstore(provider_stack: Make) -> None:
    """MailKit #970."""
    stack = provider_stack(PROFILES["icloud"])
    with stack.client() as client:
        assert client.has_capability("CONDSTORE")
        assert answer(client, "SELECT", '"INBOX"', "(CONDSTORE)") == "NO"
        client.select_folder("INBOX")  # plain SELECT works
        client.append("INBOX", raw("one"))
        assert client.fetch([1], ["MODSEQ"])  # what iCloud does with FETCH MODSEQ is not reported: passed on


@pytest.mark.parametrize("name", ["microsoft365", "yahoo"])
def test_without_condstore_its_commands_are_refused(provider_stack: Make, name: str) -> None:
    stack = provider_stack(PROFILES[name])
    with stack.client() as client:
        assert answer(client, "ENABLE", "CONDSTORE") in ("OK", "BAD")  # enables nothing, or no ENABLE at all
        client.append("INBOX", raw("one"))
        client.select_folder("INBOX")
        assert answer(client, "SELECT", '"INBOX"', "(CONDSTORE)") == "BAD"
        client.select_folder("INBOX")
        assert answer(client, "UID", "STORE", "1", "(UNCHANGEDSINCE 5)", "+FLAGS", "(\\Seen)") == "BAD"
        assert answer(client, "UID", "FETCH", "1", "(FLAGS MODSEQ)") == "BAD"
        assert answer(client, "UID", "SEARCH", "MODSEQ", "1") == "BAD"
        assert client.search("ALL") == [1]


# -- folders -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROFILES))
def test_folders_are_the_providers_and_special_use_shows_only_where_it_exists(provider_stack: Make, name: str) -> None:
    profile = PROFILES[name]
    stack = provider_stack(profile)
    with stack.client() as client:
        listed = {folder: {f.decode() for f in flags} for flags, _sep, folder in client.list_folders()}
    assert profile.sent in listed
    for folder, attribute in profile.folders.items():
        assert folder in listed
        if attribute:
            assert (attribute in listed[folder]) is profile.special_use, (folder, listed[folder])
    # Dovecot itself still knows (the assertions of the suite read it directly).
    assert "\\Sent" in stack.dovecot.folders(stack.user)[profile.sent]


def test_microsoft_has_outlooks_own_outbox(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["microsoft365"])
    with stack.client() as client:
        assert client.folder_exists("Outbox")
        assert client.find_special_folder(b"\\Sent") == "Sent Items"  # found by name: no SPECIAL-USE


def test_special_use_list_selection_is_refused_without_the_capability(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["icloud"])
    with stack.client() as client:
        assert answer(client, "LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)") == "BAD"


# -- keywords ----------------------------------------------------------------------------------------------


def test_microsoft_accepts_a_custom_keyword_and_does_not_keep_it(provider_stack: Make) -> None:
    """MailKit #702, node-imap #602: PERMANENTFLAGS without \\*; STORE answers OK, the keyword is gone."""
    stack = provider_stack(PROFILES["microsoft365"])
    with stack.client() as client:
        client.append("INBOX", raw("one"), flags=("\\Seen", "$Claimed"))
        selected = client.select_folder("INBOX")
        permanent = {f.decode() for f in selected[b"PERMANENTFLAGS"]}
        assert "\\*" not in permanent and "\\Flagged" in permanent
        assert not any(f.startswith("$") for f in {x.decode() for x in selected[b"FLAGS"]})
        client.add_flags([1], ["$MentorAgentClaim", "\\Flagged"])  # answered OK
        client.add_flags([1], ["$OnlyAKeyword"])  # answered OK, nothing sent upstream
        flags = set(client.get_flags([1])[1]) - {b"\\Recent"}
    assert flags == {b"\\Seen", b"\\Flagged"}
    uid = next(iter(stack.dovecot.messages(stack.user, "INBOX")))
    assert stack.dovecot.flags(stack.user, "INBOX", uid) == {"\\Seen", "\\Flagged"}
    assert ("keywords dropped", "$Claimed") in stack.proxy.events


@pytest.mark.parametrize("name", ["dovecot", "gmail", "yahoo"])
def test_other_providers_keep_keywords(provider_stack: Make, name: str) -> None:
    stack = provider_stack(PROFILES[name])
    with stack.client() as client:
        client.append("INBOX", raw("one"))
        client.select_folder("INBOX")
        client.add_flags([1], ["$MentorAgentClaim"])
        assert b"$MentorAgentClaim" in client.get_flags([1])[1]


# -- COPYUID -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["copy", "move"])
def test_yahoo_reports_copyuid_destinations_in_another_order(provider_stack: Make, command: str) -> None:
    """MailKit #1405: the reported map pairs each source with another message's copy."""
    stack = provider_stack(PROFILES["yahoo"])
    with stack.client() as client:
        for n in range(4):
            client.append("INBOX", raw(f"message-{n}"))
        client.create_folder("Target")
        client.select_folder("INBOX")
        before = subjects_by_uid(stack, "INBOX")
        getattr(client, command)([1, 2, 3, 4], "Target")
        code = client._imap.untagged_responses.pop("COPYUID", None)
        if code is None:  # COPY answers COPYUID in the tagged OK, which imaplib keeps as the command's text
            code = [re.search(rb"COPYUID (.*)\]", client._imap.untagged_responses.pop("OK", [b""])[-1] or b"")]
    text = code[-1].decode() if isinstance(code[-1], bytes) else code[-1].group(1).decode()
    _validity, sources, targets = text.split()[:3]
    reported = dict(zip([int(s) for s in _expand(sources)], [int(t) for t in targets.split(",")], strict=True))
    after = subjects_by_uid(stack, "Target")
    wrong = [s for s, t in reported.items() if after[t] != before[s]]
    assert wrong == [1, 2, 3, 4], (reported, before, after)
    assert "copyuid reordered" in stack.proxy.kinds()


def _expand(text: str) -> list[int]:
    from tests.servers.providers.wire import expand

    return expand(text)


def test_yahoo_leaves_a_single_message_copyuid_alone(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["yahoo"])
    with stack.client() as client:
        client.append("INBOX", raw("only"))
        client.create_folder("Target")
        client.select_folder("INBOX")
        client.move([1], "Target")
    assert stack.proxy.kinds() == []


# -- Gmail labels ------------------------------------------------------------------------------------------


def test_gmail_all_mail_keeps_what_was_removed_from_a_folder(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["gmail"])
    with stack.client() as client:
        client.create_folder("Scheduled")
        client.append("Scheduled", raw("held"))
        client.append("[Gmail]/Trash", raw("binned"))  # Trash is not a label: not in All Mail
        client.select_folder("Scheduled")
        client.create_folder("Label")
        client.copy([1], "Label")  # one message, two folders: the original stays
        client.delete_messages([1])
        client.expunge()
    assert subjects_by_uid(stack, "Scheduled") == {}
    assert list(subjects_by_uid(stack, "Label").values()) == ["held"]
    assert list(subjects_by_uid(stack, "[Gmail]/All Mail").values()) == ["held"]


def test_gmail_refuses_an_append_over_its_limit(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["gmail"].but(append_limit=2000))
    with stack.client() as client:
        with pytest.raises(IMAPClientError, match="TOOBIG"):
            client.append("INBOX", raw("big") + b"x" * 3000)
        client.append("INBOX", raw("small"))  # the session goes on
    assert list(subjects_by_uid(stack, "INBOX").values()) == ["small"]


# -- sessions ----------------------------------------------------------------------------------------------


def test_expire_token_ends_every_session_with_the_microsoft_bye(provider_stack: Make) -> None:
    """imapsync #250: ``* BYE Session invalidated - AccessTokenExpired`` in the middle of a session."""
    stack = provider_stack(PROFILES["microsoft365"])
    with stack.client() as idler, stack.client() as other:
        idler.select_folder("INBOX")
        idler.idle()
        other.select_folder("INBOX")
        time.sleep(0.2)
        assert stack.proxy.sessions == 2
        assert stack.proxy.expire_token() == 2
        responses = idler.idle_check(timeout=3)
        assert any(r[0] == b"BYE" and b"AccessTokenExpired" in r for r in responses), responses
        with pytest.raises((imaplib.IMAP4.abort, OSError), match=r"AccessTokenExpired|EOF|closed|reset"):
            other.noop()
    with stack.client() as again:  # a new session (with a fresh token) works
        assert again.select_folder("INBOX")
    assert BYE_TOKEN_EXPIRED in stack.proxy.events[-1][1]


def test_an_idle_longer_than_the_limit_is_dropped_and_a_renewed_one_is_not(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["microsoft365"].but(idle_limit=1.5))
    with stack.client() as renewing, stack.client() as idler:
        renewing.select_folder("INBOX")
        idler.select_folder("INBOX")
        idler.idle()
        renewing.idle()
        for _ in range(4):  # 2 s in all, never 1.5 s in one IDLE
            time.sleep(0.5)
            renewing.idle_done()
            renewing.idle()
        responses = idler.idle_check(timeout=1)
        assert any(r[0] == b"BYE" for r in responses), responses
        renewing.idle_done()
        assert renewing.noop()
    assert stack.proxy.kinds() == ["bye"]


def test_a_session_older_than_the_limit_is_dropped(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["gmail"].but(session_limit=0.5))
    with stack.client() as client:
        client.select_folder("INBOX")
        time.sleep(1.0)
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            client.noop()


# -- SMTP --------------------------------------------------------------------------------------------------


def _send(stack: Stack, subject: str, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(stack.smtp.host, stack.smtp.port, timeout=10) as smtp:
        return smtp.sendmail("sam@med.example.edu", rcpts, raw(subject, to=", ".join(rcpts)))


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_providers_that_file_submissions_in_sent_do_so_before_250(provider_stack: Make, name: str) -> None:
    profile = PROFILES[name]
    stack = provider_stack(profile)
    _send(stack, "submitted", ["a@example.org"])
    filed = list(subjects_by_uid(stack, profile.sent).values())
    assert filed == (["submitted"] if profile.files_sent else [])
    if profile.all_mail:
        assert list(subjects_by_uid(stack, profile.all_mail).values()) == ["submitted"]


def test_gmail_files_no_second_copy_of_a_message_already_in_sent_mail(provider_stack: Make) -> None:
    """The WildDuck wiki, "Gmail sending": a similar message (its Message-ID) in Sent Mail already, nothing filed."""
    profile = PROFILES["gmail"]
    stack = provider_stack(profile)
    message = raw("sent before", to="a@example.org")
    with stack.client() as client:
        client.append(profile.sent, message, flags=("\\Seen",))
    with smtplib.SMTP(stack.smtp.host, stack.smtp.port, timeout=10) as smtp:
        smtp.sendmail("sam@med.example.edu", ["a@example.org"], message)
    assert list(subjects_by_uid(stack, profile.sent).values()) == ["sent before"]
    assert list(subjects_by_uid(stack, str(profile.all_mail)).values()) == ["sent before"]


def test_sending_limits_are_refused_with_the_providers_reply(provider_stack: Make) -> None:
    profile = PROFILES["microsoft365"]
    stack = provider_stack(
        profile.but(
            limits=Limits(
                per_minute=2,
                recipients_per_message=2,
                reply=profile.limits.reply,
                recipients_reply=profile.limits.recipients_reply,
            )
        )
    )
    refused = _send(stack, "three recipients", ["a@example.org", "b@example.org", "c@example.org"])
    assert list(refused) == ["c@example.org"] and refused["c@example.org"][0] == 550
    _send(stack, "second", ["a@example.org"])
    with pytest.raises(smtplib.SMTPSenderRefused) as error:
        _send(stack, "third in a minute", ["a@example.org"])
    assert error.value.smtp_code == 554 and b"SubmissionQuotaExceeded" in error.value.smtp_error
    assert len(stack.smtp.messages) == 2


def test_the_published_limits_are_data() -> None:
    assert PROFILES["gmail"].limits.per_day == 2000 and PROFILES["gmail"].limits.recipients_per_message == 100
    assert PROFILES["microsoft365"].limits.per_minute == 30


def test_the_proxy_passes_a_synchronizing_literal_and_a_large_fetch_unchanged(provider_stack: Make) -> None:
    stack = provider_stack(PROFILES["dovecot"])
    body = raw("large") + (b"0123456789" * 100 + b"\r\n") * 300
    with stack.client() as client:
        client.append("INBOX", body)  # imaplib waits for "+" before the literal
        client.select_folder("INBOX")
        fetched = client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    assert fetched.replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n")
    assert stack.proxy.events == []


def test_a_proxy_stops_with_clients_connected(provider_dovecots: Callable[..., object]) -> None:
    profile = PROFILES["dovecot"]
    dovecot = provider_dovecots(profile)
    proxy = ProviderProxy(profile, upstream_port=dovecot.port)  # type: ignore[attr-defined]
    proxy.start()
    client = IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=5)
    proxy.stop()
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
    client.shutdown()


# -- the proxy's grammar (pure) ----------------------------------------------------------------------------


def test_wire_rewrites_only_what_it_should() -> None:
    from tests.servers.providers import wire

    caps_line = b"* OK [CAPABILITY IMAP4rev1 MOVE CONDSTORE STARTTLS] ready\r\n"
    assert wire.rewrite_capabilities(caps_line, frozenset({"CONDSTORE", "STARTTLS"}), ("X-GM-EXT-1",)) == (
        b"* OK [CAPABILITY IMAP4rev1 MOVE X-GM-EXT-1] ready\r\n"
    )
    assert wire.strip_special_use(b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n') == (
        b'* LIST (\\HasNoChildren) "/" "Sent Items"\r\n'
    )
    assert wire.reorder_copyuid(b"* OK [COPYUID 7 1:3 10:12] Moved\r\n") == (
        b"* OK [COPYUID 7 1:3 12,11,10] Moved\r\n",
        True,
    )
    assert wire.reorder_copyuid(b"A1 OK [COPYUID 7 4 9] Done\r\n") == (b"A1 OK [COPYUID 7 4 9] Done\r\n", False)
    line, dropped, empty = wire.strip_store_keywords(b"A2 UID STORE 1:3 +FLAGS.SILENT ($Claim \\Deleted)\r\n")
    assert (line, dropped, empty) == (b"A2 UID STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n", ["$Claim"], False)
    assert wire.strip_store_keywords(b"A3 STORE 1 +FLAGS ($Claim)\r\n")[2] is True
    assert wire.strip_append_keywords(b'A4 APPEND "Out box" (\\Seen $X) {12}\r\n') == (
        b'A4 APPEND "Out box" (\\Seen) {12}\r\n',
        ["$X"],
    )
    fetch = b"* 3 FETCH (UID 9 FLAGS (\\Seen $Claim) BODY[] {5}\r\n"
    assert wire.no_keywords_in_response(fetch, 0, fetch) == b"* 3 FETCH (UID 9 FLAGS (\\Seen) BODY[] {5}\r\n"
    assert wire.literal_size(b"A5 APPEND INBOX {310+}\r\n") == (310, True)
    assert wire.tokens('A6 SELECT "[Gmail]/All Mail" (CONDSTORE)') == [
        "A6",
        "SELECT",
        "[Gmail]/All Mail",
        ["CONDSTORE"],
    ]
    assert wire.expand("9:7,12") == [9, 8, 7, 12]
