"""A fake OAuth2 authorization server on loopback (HTTPS with the tests' trustme CA), Microsoft- and Google-like.

Microsoft-like, under ``/<tenant>/``: the OpenID configuration msal reads, the device authorization endpoint and
the token endpoint (device code: answers queued in ``device_answers`` first — "authorization_pending",
"slow_down", "expired_token" — then tokens; refresh: a new access token and, with ``rotate``, a new refresh token
while the old one stops working). Google-like: ``/o/oauth2/auth`` redirects the "browser" to the loopback
``redirect_uri`` with a code; ``/token`` exchanges it (checking PKCE) and refreshes. ``revoke(refresh_token)``
or ``revoke_all()`` makes refreshes answer ``invalid_grant``. ``/introspect`` answers RFC 7662 for Dovecot's
oauth2 passdb (plain HTTP on ``introspect_port``, since Dovecot is given no CA for it).

Every request is recorded in ``requests`` (path, form) so that tests can count polls and refreshes.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


@dataclass
class Issued:
    username: str
    scope: str
    expires_at: float


@dataclass
class _State:
    device_answers: deque[str] = field(default_factory=deque)
    access_tokens: dict[str, Issued] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # live refresh token -> username
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> username, challenge, redirect
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeAuthServer:
    """``base`` is the authority (https://127.0.0.1:port); ``username`` is who "signs in"."""

    def __init__(self, cert_pem: Path, key_pem: Path, *, username: str = "student@example.edu") -> None:
        self.username = username
        self.rotate = True
        self.expires_in = 3600  # seconds an access token lasts
        self.client_id = "test-client-id"
        self.state = _State()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_pem), str(key_pem))
        self._https = http.server.ThreadingHTTPServer((HOST, 0), self._handler())
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = http.server.ThreadingHTTPServer((HOST, 0), self._handler())  # /introspect for Dovecot
        self.port = self._https.server_address[1]
        self.introspect_port = self._http.server_address[1]
        self.base = f"https://{HOST}:{self.port}"
        self._stopped = False
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            for server in (self._https, self._http)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop serving (a second call does nothing): connections are then refused."""
        if self._stopped:
            return
        self._stopped = True
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    # -- what tests change and look at ---------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        with self.state.lock:
            return list(self.state.requests)

    def grants(self, grant_type: str) -> list[dict[str, str]]:
        return [form for path, form in self.requests if path.endswith("token") and form.get("grant_type") == grant_type]

    def reset(self) -> None:
        """Nothing issued, nothing revoked, no queued answers, tokens that last an hour (for a shared server)."""
        self.state = _State()
        self.expires_in = 3600
        self.rotate = True

    def revoke_all(self) -> None:
        with self.state.lock:
            self.state.refresh_tokens.clear()

    def live_refresh_tokens(self) -> set[str]:
        with self.state.lock:
            return set(self.state.refresh_tokens)

    def active(self, token: str) -> Issued | None:
        with self.state.lock:
            issued = self.state.access_tokens.get(token)
        return issued if issued is not None and issued.expires_at > time.time() else None

    # -- the endpoints ---------------------------------------------------------------------------------------
    def _tokens(self, username: str, scope: str, *, refresh: bool = True) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": self.expires_in,
            "scope": scope,
        }
        with self.state.lock:
            self.state.access_tokens[access] = Issued(username, scope, time.time() + self.expires_in)
            if refresh:
                token = "rt-" + secrets.token_urlsafe(24)
                self.state.refresh_tokens[token] = username
                answer["refresh_token"] = token
        return answer

    def _id_token(self, tenant: str) -> str:
        now = int(time.time())
        claims = {
            "iss": f"{self.base}/{tenant}/v2.0",
            "aud": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": "subject-1",
            "oid": "object-1",
            "tid": "tenant-1",
            "preferred_username": self.username,
            "name": "Test Student",
        }
        return ".".join((_b64(b'{"alg":"none","typ":"JWT"}'), _b64(json.dumps(claims).encode()), ""))

    def _microsoft(self, tenant: str, rest: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        root = f"{self.base}/{tenant}"
        if rest == "v2.0/.well-known/openid-configuration":
            return 200, {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            }
        if rest == "oauth2/v2.0/devicecode":
            return 200, {
                "device_code": "dc-" + secrets.token_urlsafe(16),
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.base}/devicelogin",
                "expires_in": 900,
                "interval": 1,
                "message": "To sign in, use a web browser to open the page and enter the code ABCD-EFGH.",
            }
        if rest == "oauth2/v2.0/token":
            scope = " ".join(s for s in form.get("scope", "").split() if s.startswith("https://"))
            if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
                with self.state.lock:
                    waiting = self.state.device_answers.popleft() if self.state.device_answers else ""
                if waiting:
                    return 400, {"error": waiting, "error_description": f"{waiting} (fake server)"}
                return 200, self._microsoft_tokens(tenant, scope)
            if form.get("grant_type") == "refresh_token":
                return self._refresh(form, scope, microsoft=tenant)
            return 400, {"error": "unsupported_grant_type"}
        return 404, {"error": "not_found"}

    def _microsoft_tokens(self, tenant: str, scope: str) -> dict[str, Any]:
        answer = self._tokens(self.username, scope)
        answer["id_token"] = self._id_token(tenant)
        answer["client_info"] = _b64(json.dumps({"uid": "object-1", "utid": "tenant-1"}).encode())
        answer["ext_expires_in"] = self.expires_in
        return answer

    def _refresh(self, form: dict[str, str], scope: str, *, microsoft: str = "") -> tuple[int, dict[str, Any]]:
        old = form.get("refresh_token", "")
        with self.state.lock:
            username = self.state.refresh_tokens.get(old)
            if username is not None and self.rotate:
                del self.state.refresh_tokens[old]
        if username is None:
            return 400, {
                "error": "invalid_grant",
                "error_description": "AADSTS700082: The refresh token has expired or was revoked (fake server).",
            }
        if microsoft:
            return 200, self._microsoft_tokens(microsoft, scope)
        return 200, self._tokens(username, scope or "https://mail.google.com/", refresh=self.rotate)

    def _google_auth(self, query: dict[str, str]) -> tuple[int, dict[str, Any], str]:
        code = "code-" + secrets.token_urlsafe(12)
        with self.state.lock:
            self.state.codes[code] = (self.username, query.get("code_challenge", ""), query.get("redirect_uri", ""))
        target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        return 302, {}, target

    def _google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") == "authorization_code":
            with self.state.lock:
                found = self.state.codes.pop(form.get("code", ""), None)
            if found is None:
                return 400, {"error": "invalid_grant", "error_description": "Bad code."}
            username, challenge, redirect = found
            verifier = form.get("code_verifier", "")
            if challenge and _b64(hashlib.sha256(verifier.encode()).digest()) != challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match."}
            if form.get("redirect_uri") != redirect:
                return 400, {"error": "redirect_uri_mismatch"}
            return 200, self._tokens(username, "https://mail.google.com/")
        if form.get("grant_type") == "refresh_token":
            return self._refresh(form, "https://mail.google.com/")
        return 400, {"error": "unsupported_grant_type"}

    def _introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        issued = self.active(form.get("token", ""))
        if issued is None:
            return 200, {"active": False}
        return 200, {"active": True, "username": issued.username, "scope": issued.scope, "exp": int(issued.expires_at)}

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any], str]:
        with self.state.lock:
            self.state.requests.append((path, form))
        if path == "/introspect":
            return (*self._introspect(form), "")
        if path == "/o/oauth2/auth" and method == "GET":
            return self._google_auth(form)
        if path == "/token" and method == "POST":
            return (*self._google_token(form), "")
        parts = path.lstrip("/").split("/", 1)
        if len(parts) == 2:
            return (*self._microsoft(parts[0], parts[1], form), "")
        return 404, {"error": "not_found"}, ""

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                split = urllib.parse.urlsplit(self.path)
                form = dict(urllib.parse.parse_qsl(split.query))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    form.update(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                status, body, location = fake._route(method, split.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
