"""``meterbox-factory``: the vendor CA, minting box identities, and printing their labels."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import ca, label
from .mint import BOX_ID, Identity, MintError, mint

log = logging.getLogger("meterbox_factory")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meterbox-factory", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    ca_p = sub.add_parser("ca", help="the vendor CA").add_subparsers(dest="ca_command", required=True)
    init = ca_p.add_parser("init", help="create the vendor root CA (EC P-256; ca.key is 0600)")
    init.add_argument("--dir", type=Path, required=True, help="CA directory")
    server = ca_p.add_parser("server-cert", help="a server certificate (broker, web service)")
    server.add_argument("--dir", type=Path, required=True, help="CA directory")
    server.add_argument("--name", help="file stem (default: the first NAME)")
    server.add_argument("names", nargs="+", metavar="NAME", help="DNS names or IP addresses (SANs)")
    client = ca_p.add_parser("client-cert", help="a client certificate for a vendor service (e.g. ingest)")
    client.add_argument("--dir", type=Path, required=True, help="CA directory")
    client.add_argument("common_name", metavar="NAME", help="the certificate's CN, e.g. ingest")
    m = sub.add_parser("mint", help="mint box identities and vendor-import.json")
    m.add_argument("--out", type=Path, required=True, help="folder; one sub-folder per box")
    m.add_argument("--count", type=int, default=1)
    m.add_argument("--vendor", required=True, help="the vendor service's URL, e.g. https://vendor.example")
    lab = sub.add_parser("label", help="the label of one box as .svg, .png or .pdf (62 x 29 mm)")
    lab.add_argument("box_dir", type=Path, metavar="DIR/MB-xxxxxx")
    lab.add_argument("--out", type=Path, required=True)
    sheet = sub.add_parser("label-sheet", help="an A4 PDF of the labels of every box in DIR")
    sheet.add_argument("dir", type=Path, metavar="DIR")
    sheet.add_argument("--out", type=Path, required=True)
    return p


def run(args: argparse.Namespace) -> None:
    """Carry out one command; errors are raised as the modules' own one-sentence exceptions."""
    if args.command == "ca":
        if args.ca_command == "init":
            authority = ca.init(args.dir)
            print(f"vendor CA created: {authority.cert_path} (key {args.dir / 'ca.key'}, mode 0600)")
        elif args.ca_command == "server-cert":
            cert, key = ca.issue_server(ca.load(args.dir), args.names, args.name)
            print(f"server certificate for {', '.join(args.names)}: {cert} (key {key})")
        else:
            cert, key = ca.issue_client(ca.load(args.dir), args.common_name)
            print(f"client certificate CN={args.common_name}: {cert} (key {key})")
    elif args.command == "mint":
        for identity in mint(args.out, args.count, args.vendor):
            print(f"{identity.box}  {identity.folder}")
        print(f"vendor import file: {args.out / 'vendor-import.json'} (public keys and claim-code hashes only)")
    elif args.command == "label":
        label.write(Identity.load(args.box_dir), args.out)
        print(f"label written: {args.out}")
    else:
        folders = sorted(p for p in args.dir.iterdir() if p.is_dir() and BOX_ID.match(p.name))
        if not folders:
            raise MintError(f"no box folders (MB-xxxxxx) in {args.dir}; mint some with meterbox-factory mint")
        args.out.write_bytes(label.sheet([Identity.load(f) for f in folders]))
        print(f"{len(folders)} labels on {-(-len(folders) // 27)} A4 page(s): {args.out}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (ca.CaError, MintError, ValueError, OSError) as err:
        print(f"meterbox-factory: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
