"""A tiny DNS server on 127.0.0.1 (UDP) answering from a table, for the discovery tests: nothing leaves loopback.

with DnsServer({("_imaps._tcp.uni.example", "SRV"): ["0 1 993 imap.uni.example."]}) as dns:
    Where.loopback(dns=dns.address)
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(name.rstrip(".").lower(), kind.upper()): values for (name, kind), values in records.items()}
        self.asked: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            kind = dns.rdatatype.to_text(question.rdtype)
            self.asked.append((name, kind))
            values = self.records.get((name, kind))
            if values:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, question.rdtype, values)
                )
            elif not any(n == name for n, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self._socket.sendto(response.to_wire(), peer)
