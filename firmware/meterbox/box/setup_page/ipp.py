"""The two IPP requests the setup page needs (RFC 8010/8011): Get-Printer-Attributes and Print-Job.

Encoded here rather than with a library: pyipp/aioipp bring aiohttp (several MB of RSS on a
512 MB box) for what is two small binary messages over one HTTP POST, and neither has Print-Job.
"""

from __future__ import annotations

import http.client
import struct
from typing import Iterable

GET_PRINTER_ATTRIBUTES = 0x000B
PRINT_JOB = 0x0002
# value tags
CHARSET, LANGUAGE, URI, NAME, KEYWORD, MIME = 0x47, 0x48, 0x45, 0x42, 0x44, 0x49
OPERATION_GROUP, END = 0x01, 0x03
TEXT_TAGS = range(0x41, 0x4A)  # textWithoutLanguage … mimeMediaType: values are strings


class IppError(Exception):
    """The printer answered, but not with success (str() has its status code)."""


def _attr(tag: int, name: str, values: Iterable[str]) -> bytes:
    out = b""
    for i, value in enumerate(values):
        key = name.encode() if i == 0 else b""  # later values of one attribute have no name
        data = value.encode()
        out += struct.pack(">BH", tag, len(key)) + key + struct.pack(">H", len(data)) + data
    return out


def request(operation: int, uri: str, extra: bytes = b"", request_id: int = 1) -> bytes:
    """An IPP/2.0 request with the operation attributes every request carries, then EXTRA."""
    return (struct.pack(">BBHI", 2, 0, operation, request_id) + bytes([OPERATION_GROUP])
            + _attr(CHARSET, "attributes-charset", ["utf-8"])
            + _attr(LANGUAGE, "attributes-natural-language", ["en"])
            + _attr(URI, "printer-uri", [uri])
            + _attr(NAME, "requesting-user-name", ["meterbox"]) + extra + bytes([END]))


def parse(body: bytes) -> tuple[int, dict[str, list[str]]]:
    """(status code, attributes) of a response; text values as str, others as hex."""
    if len(body) < 9:
        raise IppError(f"answer of {len(body)} bytes is not IPP")
    status = struct.unpack(">H", body[2:4])[0]
    attrs: dict[str, list[str]] = {}
    pos, name = 8, ""
    while pos < len(body):
        tag = body[pos]
        pos += 1
        if tag == END:
            break
        if tag < 0x10:  # the start of another attribute group
            continue
        (nlen,) = struct.unpack(">H", body[pos:pos + 2])
        name = body[pos + 2:pos + 2 + nlen].decode() or name
        pos += 2 + nlen
        (vlen,) = struct.unpack(">H", body[pos:pos + 2])
        raw = body[pos + 2:pos + 2 + vlen]
        pos += 2 + vlen
        attrs.setdefault(name, []).append(raw.decode("utf-8", "replace") if tag in TEXT_TAGS else raw.hex())
    return status, attrs


def post(host: str, port: int, path: str, body: bytes, timeout: float) -> tuple[int, dict[str, list[str]]]:
    """POST one IPP message; the parsed answer. OSError if nothing answers, IppError if not IPP."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/ipp"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise IppError(f"HTTP {response.status} {response.reason}")
        return parse(data)
    except http.client.HTTPException as err:
        raise IppError(f"not an IPP answer ({type(err).__name__})") from None
    finally:
        conn.close()


def formats(host: str, port: int, path: str, timeout: float) -> list[str]:
    """document-format-supported (Get-Printer-Attributes)."""
    uri = f"ipp://{host}:{port}{path}"
    status, attrs = post(host, port, path, request(GET_PRINTER_ATTRIBUTES, uri, _attr(
        KEYWORD, "requested-attributes", ["document-format-supported"])), timeout)
    if status >= 0x0100:
        raise IppError(f"Get-Printer-Attributes refused (status 0x{status:04x})")
    return attrs.get("document-format-supported", [])


def print_job(host: str, port: int, path: str, document: bytes, mime: str, timeout: float) -> str:
    """Print-Job; returns the job id the printer gave."""
    uri = f"ipp://{host}:{port}{path}"
    extra = _attr(NAME, "job-name", ["meterbox setup page"]) + _attr(MIME, "document-format", [mime])
    status, attrs = post(host, port, path, request(PRINT_JOB, uri, extra) + document, timeout)
    if status >= 0x0100:
        raise IppError(f"Print-Job refused (status 0x{status:04x}: {attrs.get('status-message', [''])[0]})")
    job = attrs.get("job-id", ["?"])[0]
    return str(int(job, 16)) if job != "?" else job
