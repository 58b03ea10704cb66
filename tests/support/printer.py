"""Printers for the setup page: a raw port 9100 listener (with PJL answers) and a small IPP endpoint.

Each captures the jobs it is sent, as a printer would receive them. The IPP side decodes requests
with its own few lines (RFC 8010), independent of the firmware's encoder.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import struct
import threading
from typing import Any

from .process import free_tcp_port

PJL_CONFIG = (b"@PJL INFO CONFIG\r\nIN TRAYS [1 ENUMERATED]\r\n\tINTRAY1 MP\r\n"
              b"LANGUAGES [{n} ENUMERATED]\r\n{langs}MEMORY=134217728\r\n\x0c")


class _Printer:
    def __init__(self) -> None:
        self.jobs: list[bytes] = []
        self.requests: list[bytes] = []
        self._changed = threading.Condition()

    def _record(self, job: bytes) -> None:
        with self._changed:
            self.jobs.append(job)
            self._changed.notify_all()

    def wait_job(self, timeout: float = 10.0) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: self.jobs, timeout):
                raise AssertionError("the printer received no job")
            return self.jobs[0]


class RawPrinter(_Printer):
    """Port 9100 on HOST: answers @PJL INFO CONFIG with LANGUAGES (None: a printer that says nothing)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9100, languages: list[str] | None = None) -> None:
        super().__init__()
        self.languages = languages
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = host, self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "RawPrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self._thread.join(3)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                self.requests.append(data)
                if b"@PJL INFO CONFIG" in data and b"ENTER LANGUAGE" not in data:
                    if self.languages is not None:
                        langs = b"".join(b"\t" + lang.encode() + b"\r\n" for lang in self.languages)
                        conn.sendall(PJL_CONFIG.replace(b"{n}", str(len(self.languages)).encode())
                                     .replace(b"{langs}", langs))
                    continue
                self._record(data)


def ipp_request(body: bytes) -> tuple[int, dict[str, list[bytes]], bytes]:
    """(operation id, attributes, document data) of an IPP request."""
    op = struct.unpack(">H", body[2:4])[0]
    attrs: dict[str, list[bytes]] = {}
    pos, name = 8, ""
    while body[pos] != 0x03:
        tag = body[pos]
        pos += 1
        if tag < 0x10:
            continue
        nlen = struct.unpack(">H", body[pos:pos + 2])[0]
        name = body[pos + 2:pos + 2 + nlen].decode() or name
        pos += 2 + nlen
        vlen = struct.unpack(">H", body[pos:pos + 2])[0]
        attrs.setdefault(name, []).append(body[pos + 2:pos + 2 + vlen])
        pos += 2 + vlen
    return op, attrs, body[pos + 1:]


def _value(tag: int, name: str, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(value)) + value


class IppPrinter(_Printer):
    """An IPP endpoint at ipp://127.0.0.1:PORT/ipp/print: Get-Printer-Attributes and Print-Job."""

    def __init__(self, formats: list[str]) -> None:
        super().__init__()
        self.formats = formats
        self.port = free_tcp_port()
        self.operations: list[tuple[int, dict[str, list[bytes]]]] = []
        printer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                op, attrs, data = ipp_request(body)
                printer.operations.append((op, attrs))
                groups = (b"\x01" + _value(0x47, "attributes-charset", b"utf-8")
                          + _value(0x48, "attributes-natural-language", b"en"))
                status = 0x0000
                if op == 0x000B:
                    groups += b"\x04" + b"".join(_value(0x49, "document-format-supported" if i == 0 else "",
                                                        f.encode()) for i, f in enumerate(printer.formats))
                elif op == 0x0002:
                    fmt = attrs.get("document-format", [b"application/octet-stream"])[0].decode()
                    if fmt not in printer.formats:
                        status = 0x040A  # client-error-document-format-not-supported
                    else:
                        printer._record(data)
                        groups += b"\x02" + _value(0x21, "job-id", struct.pack(">i", 7))
                answer = struct.pack(">BBHI", 2, 0, status, struct.unpack(">I", body[4:8])[0]) + groups + b"\x03"
                self.send_response(200)
                self.send_header("Content-Type", "application/ipp")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def __enter__(self) -> "IppPrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
