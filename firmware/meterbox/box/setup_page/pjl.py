"""Raw port 9100 (AppSocket/JetDirect): ask the printer's languages with PJL, send a job wrapped in PJL."""

from __future__ import annotations

import socket

UEL = b"\x1b%-12345X"  # Universal Exit Language: the start and end of every PJL job


def languages(host: str, port: int, timeout: float) -> list[str] | None:
    """The page description languages `@PJL INFO CONFIG` lists, or None if the printer says nothing."""
    query = UEL + b"@PJL\r\n@PJL INFO CONFIG\r\n" + UEL
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(query)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while b"\x0c" not in answer and len(answer) < 65536:  # the answer ends with a form feed
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except socket.timeout:
            pass
    if b"@PJL INFO CONFIG" not in answer:
        return None
    return _languages(answer.decode("latin-1"))


def _languages(text: str) -> list[str]:
    """The indented lines after "LANGUAGES [n ENUMERATED]"."""
    out: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().upper().startswith("LANGUAGES"):
            for item in lines[i + 1:]:
                if not item.startswith(("\t", " ")):
                    break
                out.append(item.strip().upper())
    return out


def wrap(document: bytes, language: str) -> bytes:
    """The document as one PJL job in LANGUAGE ("PDF" or "POSTSCRIPT")."""
    return (UEL + b'@PJL JOB NAME="meterbox setup page"\r\n' + f"@PJL ENTER LANGUAGE={language}\r\n".encode()
            + document + UEL + b"@PJL EOJ\r\n" + UEL)


def send(host: str, port: int, job: bytes, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(job)
        sock.shutdown(socket.SHUT_WR)
        try:  # wait for the printer to close: it has read the whole job
            while sock.recv(4096):
                pass
        except socket.timeout:
            pass
