"""The SMTP adapter against a real aiosmtpd server (tests/servers/smtp.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agent.config.settings import Security, Smtp
from agent.mail.session import Login
from agent.mail.smtp import Delivery, InDoubtError, PermanentSendError, SmtpLoginRefused, TransientSendError, send
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.servers

SENDER = "student@example.org"
MENTOR = "rivera@example.org"
RAW = (
    b"From: Student <student@example.org>\r\n"
    b"To: Dr Rivera <rivera@example.org>\r\n"
    b"Subject: =?utf-8?q?Famulatur_=E2=80=94_Frage?=\r\n"
    b"Message-ID: <q1@student.example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Liebe Frau Dr. Müller,\r\n".encode()
    + b".a line starting with a dot\r\n"
    + b"y" * 900
    + b"\r\n"
)


def settings(server: SmtpServer, security: Security = "plain", **changes: Any) -> Smtp:
    return Smtp(host=server.host, port=server.port, security=security, timeout=5.0, **changes)


def run_send(
    server: SmtpServer,
    recipients: list[str],
    *,
    raw: bytes = RAW,
    attempts: int = 3,
    login: Login | None = None,
    **kwargs: Any,
) -> Delivery:
    smtp = kwargs.pop("smtp", None) or settings(server)

    async def main() -> Delivery:
        try:
            return await send(smtp, login, raw, SENDER, recipients, attempts=attempts, max_wait=0.05, **kwargs)
        finally:
            await asyncio.sleep(0.02)  # let closed transports finish before asyncio.run closes the loop

    return asyncio.run(main())


def test_plain_send_is_stored_byte_for_byte(smtp_server: SmtpServer) -> None:
    delivery = run_send(smtp_server, [MENTOR])
    assert delivery == Delivery(accepted=[MENTOR], refused={})
    [received] = smtp_server.wait_for(1)
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (MENTOR,)
    assert received.content == RAW


def test_bcc_is_in_the_envelope_only(smtp_server: SmtpServer) -> None:
    bcc = "dean@example.org"
    delivery = run_send(smtp_server, [MENTOR, bcc])
    assert delivery.accepted == [MENTOR, bcc]
    [received] = smtp_server.wait_for(1)
    assert set(received.rcpt_tos) == {MENTOR, bcc}
    assert bcc.encode() not in received.content
    assert b"\r\nBcc:" not in received.content


def test_starttls_with_auth(smtp_tls_server: SmtpServer) -> None:
    assert smtp_tls_server.auth is not None
    user, password = smtp_tls_server.auth
    smtp = settings(smtp_tls_server, "starttls")
    delivery = run_send(
        smtp_tls_server,
        [MENTOR],
        smtp=smtp,
        login=Login(user, password),
        tls_context=smtp_tls_server.ssl_context(),
    )
    assert delivery.accepted == [MENTOR]
    [received] = smtp_tls_server.wait_for(1)
    assert received.content == RAW
    assert received.authenticated_as == user


def test_a_wrong_smtp_password_is_a_refused_login_and_not_retried(smtp_tls_server: SmtpServer) -> None:
    assert smtp_tls_server.auth is not None
    with pytest.raises(SmtpLoginRefused) as caught:
        run_send(
            smtp_tls_server,
            [MENTOR],
            smtp=settings(smtp_tls_server, "starttls"),
            login=Login(smtp_tls_server.auth[0], "wrong-password-123"),
            tls_context=smtp_tls_server.ssl_context(),
        )
    assert "refused by" in str(caught.value) and "535 5.7.8" in str(caught.value)
    assert caught.value.exit_code == 78
    assert "wrong-password-123" not in str(caught.value)
    assert smtp_tls_server.sessions == 1
    assert smtp_tls_server.messages == []


def test_451_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("451 4.3.0 try later")
    assert run_send(smtp_server, [MENTOR]).accepted == [MENTOR]
    assert len(smtp_server.messages) == 1
    assert smtp_server.sessions == 2  # a new connection for the retry


def test_421_and_close_is_retried_on_a_new_connection(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("421 4.3.2 shutting down", stage="MAIL", close=True)
    assert run_send(smtp_server, [MENTOR]).accepted == [MENTOR]
    assert [m.content for m in smtp_server.messages] == [RAW]
    assert smtp_server.sessions == 2


def test_550_is_permanent_with_the_servers_words(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("550 5.7.1 Message rejected as spam")
    with pytest.raises(PermanentSendError) as caught:
        run_send(smtp_server, [MENTOR])
    assert caught.value.reply == "550 5.7.1 Message rejected as spam"
    assert smtp_server.sessions == 1


def test_a_partial_refusal_is_reported(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("nobody@example.org", "550 5.1.1 no such user")
    delivery = run_send(smtp_server, [MENTOR, "nobody@example.org"])
    assert delivery.accepted == [MENTOR]
    assert delivery.refused == {"nobody@example.org": "550 5.1.1 no such user"}
    assert smtp_server.wait_for(1)[0].rcpt_tos == (MENTOR,)


def test_a_recipient_refused_for_now_is_retried_alone(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("dean@example.org", "450 4.2.1 mailbox busy", times=1)
    delivery = run_send(smtp_server, [MENTOR, "dean@example.org"])
    assert delivery == Delivery(accepted=[MENTOR, "dean@example.org"], refused={})
    first, second = smtp_server.wait_for(2)
    assert second.rcpt_tos == ("dean@example.org",)
    assert first.content == second.content == RAW


def test_every_recipient_refused_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.refuse(MENTOR, "550 5.1.1 no such user")
    smtp_server.refuse("dean@example.org", "553 5.1.3 bad address")
    with pytest.raises(PermanentSendError) as caught:
        run_send(smtp_server, [MENTOR, "dean@example.org"])
    assert caught.value.refused == {MENTOR: "550 5.1.1 no such user", "dean@example.org": "553 5.1.3 bad address"}
    assert "550 5.1.1 no such user" in caught.value.reply
    assert smtp_server.messages == []


def test_retries_exhausted_is_transient(smtp_server: SmtpServer) -> None:
    for _ in range(3):
        smtp_server.fail_next("451 4.3.0 try later")
    with pytest.raises(TransientSendError, match=r"451 4\.3\.0 try later"):
        run_send(smtp_server, [MENTOR], attempts=3)
    assert smtp_server.sessions == 3 and smtp_server.messages == []


def test_nothing_listening_is_transient(smtp_server: SmtpServer) -> None:
    smtp_server.stop()
    with pytest.raises(TransientSendError):
        run_send(smtp_server, [MENTOR], attempts=2)
    smtp_server.start()


def test_connection_lost_after_the_data_is_in_doubt_and_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.drop_after_data()
    with pytest.raises(InDoubtError) as caught:
        run_send(smtp_server, [MENTOR])
    assert caught.value.recipients == [MENTOR]
    assert len(smtp_server.messages) == 1  # the server did take it: a retry would have sent it twice
    assert smtp_server.sessions == 1


def test_a_stop_cuts_the_wait_between_retries_short(smtp_server: SmtpServer) -> None:
    """Ctrl-C while a 451 waits for its retry: the wait ends at once and nothing more is tried (issue 11)."""
    from agent.mail.smtp import Sender, SendStopped

    for _ in range(5):
        smtp_server.fail_next("451 4.3.0 try later")

    async def main() -> float:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, stopping.set)
        started = loop.time()
        async with Sender(settings(smtp_server), None, attempts=5, max_wait=60.0, stopping=stopping) as sender:
            with pytest.raises(SendStopped):
                await sender.send(RAW, SENDER, [MENTOR])
        return loop.time() - started

    assert asyncio.run(main()) < 2.0
    assert smtp_server.messages == []


UTF8_RAW = "From: student@example.org\r\nTo: müller@xn--exmple-cua.org\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()


def test_an_address_beyond_ascii_goes_with_smtputf8_where_offered() -> None:
    server = SmtpServer(smtputf8=True)
    server.start()
    try:
        delivery = run_send(server, ["müller@xn--exmple-cua.org", MENTOR], raw=UTF8_RAW)
        [received] = server.wait_for(1)
    finally:
        server.stop()
    assert delivery == Delivery(accepted=["müller@xn--exmple-cua.org", MENTOR], refused={})
    assert received.rcpt_tos == ("müller@xn--exmple-cua.org", MENTOR)
    assert received.content.replace(b"\r\n", b"\n") == UTF8_RAW.replace(b"\r\n", b"\n")


def test_without_smtputf8_an_address_beyond_ascii_is_refused_cleanly_before_anything_is_sent(
    smtp_server: SmtpServer,
) -> None:
    with pytest.raises(PermanentSendError, match="SMTPUTF8") as refused:
        run_send(smtp_server, ["müller@xn--exmple-cua.org", MENTOR], raw=UTF8_RAW)
    assert "müller@xn--exmple-cua.org" in refused.value.reply
    assert smtp_server.messages == []
    run_send(smtp_server, [MENTOR])  # the next message goes as ever
    assert smtp_server.wait_for(1)[0].rcpt_tos == (MENTOR,)


UTF8_HEADERS = "From: student@example.org\r\nTo: Jürgen <j@xn--exmple-cua.org>\r\nSubject: Grüße\r\n\r\nHallo\r\n"


def test_headers_beyond_ascii_go_with_smtputf8_or_are_refused_cleanly(smtp_server: SmtpServer) -> None:
    """RFC 6532 headers (raw UTF-8) need SMTPUTF8 even when every envelope address is ASCII (RFC 6531 §3.4)."""
    raw = UTF8_HEADERS.encode()
    with pytest.raises(PermanentSendError, match="SMTPUTF8"):
        run_send(smtp_server, ["j@xn--exmple-cua.org"], raw=raw)
    assert smtp_server.messages == []
    server = SmtpServer(smtputf8=True)
    server.start()
    try:
        run_send(server, ["j@xn--exmple-cua.org"], raw=raw)
        [received] = server.wait_for(1)
    finally:
        server.stop()
    assert "SMTPUTF8" in received.mail_options and received.content.replace(b"\r\n", b"\n") == raw.replace(
        b"\r\n", b"\n"
    )
    run_send(smtp_server, [MENTOR], raw=raw.replace("ü".encode(), b"ue").replace("ß".encode(), b"ss"))
    assert "SMTPUTF8" not in smtp_server.wait_for(1)[0].mail_options  # ASCII as ever: no extension asked for


def test_an_address_that_cannot_be_written_at_all_fails_that_message_only() -> None:
    server = SmtpServer(smtputf8=True)
    server.start()
    try:
        with pytest.raises(PermanentSendError, match="cannot be handed to the mail server"):
            run_send(server, ["m\udcfcller@example.org"])  # undecodable header bytes, kept as a surrogate
        run_send(server, [MENTOR])
        assert [r.rcpt_tos for r in server.wait_for(1)] == [(MENTOR,)]
    finally:
        server.stop()


def test_a_close_cut_short_by_a_stop_still_closes_the_socket() -> None:
    """A stop that cancels the QUIT (a server that never answers it) left the connection open: its socket was found
    unclosed when the collector came, in whatever ran then (a red CI run)."""
    from agent.mail.smtp import Sender

    async def scenario() -> bool:
        served: list[asyncio.StreamWriter] = []

        async def never_quits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(writer)
            writer.write(b"220 localhost ESMTP\r\n")
            while line := await reader.readline():
                if line.upper().startswith((b"EHLO", b"HELO")):
                    writer.write(b"250 localhost\r\n")
                elif not line.upper().startswith(b"QUIT"):
                    writer.write(b"250 OK\r\n")
                await writer.drain()  # QUIT: no answer, ever

        server = await asyncio.start_server(never_quits, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = Sender(Smtp(host="127.0.0.1", port=port, security="plain", timeout=30.0), None)
        client = await sender._connected()
        closing = asyncio.create_task(sender.close())
        await asyncio.sleep(0.2)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        closed = client.transport is None or client.transport.is_closing()
        for writer in served:  # the test server's side, closed too
            writer.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
        return closed

    assert asyncio.run(scenario()), "the connection is closed"
