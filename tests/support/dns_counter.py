"""A DNS server that answers every question with NXDOMAIN and writes each name asked to a file.

Run inside a test's network namespace (`ip netns exec NS python dns_counter.py LOG`), whose
/etc/netns/NS/resolv.conf points at 127.0.0.1: every look-up the box makes there is counted.
"""

from __future__ import annotations

import socket
import sys


def qname(packet: bytes) -> str:
    """The first question's name of a DNS query."""
    labels, i = [], 12
    while i < len(packet) and packet[i]:
        length = packet[i]
        labels.append(packet[i + 1:i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    return ".".join(labels)


def main() -> None:
    log = open(sys.argv[1], "a", buffering=1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    print("listening", file=log)
    while True:
        packet, peer = sock.recvfrom(4096)
        if len(packet) < 12:
            continue
        print(f"query {qname(packet)}", file=log)
        flags = 0x8183  # response, recursion desired/available, NXDOMAIN
        sock.sendto(packet[:2] + flags.to_bytes(2, "big") + packet[4:6] + b"\0\0\0\0\0\0" + packet[12:], peer)


if __name__ == "__main__":
    main()
