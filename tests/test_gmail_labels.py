"""The Gmail emulation's labels (tests/servers/providers/labels.py), seen by a plain imapclient through the proxy:
one message in several folders, as https://developers.google.com/gmail/imap/imap-extensions describes it; and the
compose-window helper (tests/servers/providers/compose.py) built on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from imapclient import IMAPClient

from tests.servers.providers import PROFILES
from tests.servers.providers.compose import ComposeWindow
from tests.servers.providers.fixtures import Stack, provider_dovecots, provider_stack
from tests.test_provider_proxy import raw, subjects_by_uid

__all__ = ["provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers

Make = Callable[..., Stack]
ALL = "[Gmail]/All Mail"
DRAFTS = "[Gmail]/Drafts"
TRASH = "[Gmail]/Trash"
LABEL = "Mentor Outbox"


@pytest.fixture
def gmail(provider_stack: Make) -> Stack:
    stack = provider_stack(PROFILES["gmail"])
    with stack.client() as client:
        client.create_folder(LABEL)
        client.create_folder("Other")
    return stack


def subjects(stack: Stack, folder: str) -> list[str]:
    return sorted(subjects_by_uid(stack, folder).values())


def labelled(client: IMAPClient, message: bytes, *folders: str) -> None:
    for folder in folders:
        client.append(folder, message)


def test_one_message_appended_to_two_folders_is_one_message_in_all_mail(gmail: Stack) -> None:
    with gmail.client() as client:
        labelled(client, raw("two labels"), LABEL, "Other")
        client.append(TRASH, raw("binned"))
    assert subjects(gmail, LABEL) == subjects(gmail, "Other") == ["two labels"]
    assert subjects(gmail, ALL) == ["two labels"], "once in All Mail; never what went into Trash"


def test_a_flag_set_in_one_folder_shows_in_every_folder_of_the_message(gmail: Stack) -> None:
    with gmail.client() as client:
        labelled(client, raw("flag me"), LABEL, "Other")
        client.select_folder(LABEL)
        client.add_flags(client.search(["ALL"]), ["\\Flagged", "$Claimed"])
        client.select_folder("Other")
        assert {b"\\Flagged", b"$Claimed"} <= set(next(iter(client.get_flags(client.search(["ALL"])).values())))
        client.remove_flags(client.search(["ALL"]), ["\\Flagged"])
    for folder in (LABEL, "Other", ALL):
        (uid,) = subjects_by_uid(gmail, folder)
        assert "\\Flagged" not in gmail.dovecot.flags(gmail.user, folder, uid), folder
        assert "$Claimed" in gmail.dovecot.flags(gmail.user, folder, uid), folder


def test_expunged_from_a_label_folder_only_that_label_goes(gmail: Stack) -> None:
    with gmail.client() as client:
        labelled(client, raw("keep me"), LABEL, "Other")
        client.select_folder(LABEL)
        client.delete_messages(client.search(["ALL"]))
        client.expunge()
        client.select_folder("Other")
        client.move(client.search(["ALL"]), "INBOX")  # a move out of a label folder: that label for another
    assert subjects(gmail, LABEL) == subjects(gmail, "Other") == []
    assert subjects(gmail, "INBOX") == subjects(gmail, ALL) == ["keep me"]
    assert "\\Deleted" not in gmail.dovecot.flags(gmail.user, ALL, next(iter(subjects_by_uid(gmail, ALL))))


def test_expunged_from_all_mail_every_label_goes(gmail: Stack) -> None:
    with gmail.client() as client:
        labelled(client, raw("gone"), LABEL, "Other")
        labelled(client, raw("stays"), LABEL)
        client.select_folder(ALL)
        gone = [uid for uid, s in subjects_by_uid(gmail, ALL).items() if s == "gone"]
        client.delete_messages(gone)
        client.expunge()
    assert subjects(gmail, LABEL) == subjects(gmail, ALL) == ["stays"]
    assert subjects(gmail, "Other") == []


@pytest.mark.parametrize("how", ["move", "copy and expunge"])
def test_into_trash_every_label_goes_and_it_leaves_all_mail(gmail: Stack, how: str) -> None:
    with gmail.client() as client:
        labelled(client, raw("binned"), LABEL, "Other")
        client.select_folder(LABEL)
        uids = client.search(["ALL"])
        if how == "move":
            client.move(uids, TRASH)
        else:
            client.copy(uids, TRASH)
            client.delete_messages(uids)
            client.expunge()
    assert subjects(gmail, TRASH) == ["binned"]
    assert subjects(gmail, LABEL) == subjects(gmail, "Other") == subjects(gmail, ALL) == []


def test_removing_the_folders_own_label_takes_it_out_of_that_folder_only(gmail: Stack) -> None:
    with gmail.client() as client:
        labelled(client, raw("draft"), DRAFTS, LABEL)
        client.select_folder(DRAFTS)
        client.remove_gmail_labels(client.search(["ALL"]), ["\\Draft"], silent=True)
    assert subjects(gmail, DRAFTS) == []
    assert subjects(gmail, LABEL) == subjects(gmail, ALL) == ["draft"]
    assert subjects(gmail, "[Gmail]/Label removed") == [], "the hidden folder is emptied"
    assert [e for e in gmail.proxy.kinds() if e == "labels"] == [], gmail.proxy.events


def test_the_compose_window_saves_autosaves_and_sends_a_labelled_draft(gmail: Stack) -> None:
    window = ComposeWindow(gmail, labels=(LABEL,))
    window.save(raw("Question"))
    first = {folder: set(subjects_by_uid(gmail, folder)) for folder in (DRAFTS, LABEL, ALL)}
    assert all(len(uids) == 1 for uids in first.values()), first
    (uid,) = first[DRAFTS]
    assert "\\Draft" in gmail.dovecot.flags(gmail.user, DRAFTS, uid)
    window.save(raw("Question"))  # an autosave (a new Message-ID here): the old message goes, new UIDs everywhere
    again = {folder: set(subjects_by_uid(gmail, folder)) for folder in (DRAFTS, LABEL, ALL)}
    for folder in (DRAFTS, LABEL, ALL):
        assert len(again[folder]) == 1 and not again[folder] & first[folder], folder
    window.send()
    assert subjects(gmail, DRAFTS) == []
    assert subjects(gmail, "[Gmail]/Sent Mail") == subjects(gmail, ALL) == subjects(gmail, LABEL) == ["Question"]
    (sent,) = subjects_by_uid(gmail, "[Gmail]/Sent Mail")
    assert "\\Draft" not in gmail.dovecot.flags(gmail.user, "[Gmail]/Sent Mail", sent)


def test_an_autosave_after_the_draft_left_drafts_makes_a_new_draft_and_leaves_the_old_message(gmail: Stack) -> None:
    window = ComposeWindow(gmail, labels=(LABEL,))
    window.save(raw("Taken"))
    with gmail.client() as client:  # what mentor-agent does when it takes it: the Drafts label goes
        client.select_folder(DRAFTS)
        client.remove_gmail_labels(client.search(["ALL"]), ["\\Draft"], silent=True)
    window.save(raw("Taken"))
    assert subjects(gmail, DRAFTS) == ["Taken"]
    assert subjects(gmail, LABEL) == subjects(gmail, ALL) == ["Taken", "Taken"], "the old message and the new"


def test_one_message_is_in_a_label_folder_once_however_often_it_is_appended_or_copied(gmail: Stack) -> None:
    """A label is on a message or not (hostile round on issue 22, e1): no second copy in one folder."""
    with gmail.client() as client:
        message = raw("twice")
        client.append(LABEL, message)
        client.append(LABEL, message)
        client.append(DRAFTS, raw("draft"), flags=("\\Draft",))
        client.select_folder(DRAFTS)
        client.copy(client.search(["ALL"]), LABEL)
        client.copy(client.search(["ALL"]), LABEL)
    assert subjects(gmail, LABEL) == ["draft", "twice"]
    assert subjects(gmail, ALL) == ["draft", "twice"]
