"""Announce a printer over mDNS, as a printer does: `python announce.py --address A --name N`.

Run by the discovery tests inside the lan namespace (`ip netns exec`); prints
"registered" once the announcement is out and keeps it up until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading

from zeroconf import ServiceInfo, Zeroconf


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True, help="the printer's IPv4 address")
    p.add_argument("--interface", required=True, help="address of the interface to announce on")
    p.add_argument("--name", default="Office Printer")
    p.add_argument("--type", default="_ipp._tcp.local.")
    p.add_argument("--port", type=int, default=631)
    args = p.parse_args()
    host = args.name.lower().replace(" ", "-") + ".local."
    info = ServiceInfo(args.type, f"{args.name}.{args.type}", addresses=[socket.inet_aton(args.address)],
                       port=args.port, properties={"rp": "ipp/print", "ty": args.name}, server=host)
    zc = Zeroconf(interfaces=[args.interface])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        zc.register_service(info)
        print("registered", flush=True)
        stop.wait()
        zc.unregister_service(info)
    finally:
        zc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
