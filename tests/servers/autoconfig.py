"""A loopback HTTP server that serves Thunderbird autoconfig files by path, for the discovery and setup tests.

with AutoconfigServer({"/mail/config-v1.1.xml": xml}) as web:
    Where.loopback(base_url=web.url)
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


def clientconfig(
    domain: str, imap: tuple[str, int, str], smtp: tuple[str, int, str], auth: str = "password-cleartext"
) -> bytes:
    """A config-v1.1.xml document with one IMAP and one SMTP server (host, port, socketType)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>{domain} mail</displayName>
    <incomingServer type="pop3">
      <hostname>pop.{domain}</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{imap[0]}</hostname><port>{imap[1]}</port><socketType>{imap[2]}</socketType>
      <username>%EMAILADDRESS%</username><authentication>{auth}</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{smtp[0]}</hostname><port>{smtp[1]}</port><socketType>{smtp[2]}</socketType>
      <username>%EMAILADDRESS%</username><authentication>{auth}</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
""".encode()


class AutoconfigServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                path = self.path.split("?")[0]
                body = server.files.get(path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AutoconfigServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)
