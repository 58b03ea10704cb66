"""``python -m meterbox_cloud COMMAND``: run and administer the vendor service.

serve          the web service (claim page, enrollment API, staff pages, admin) over HTTPS
ingest         one MQTT ingest worker (run several: they share the subscription)
migrate        create or update the database tables
import-boxes   add the boxes of a factory vendor-import.json
broker-config  write mosquitto.conf + ACL for the vendor's broker
revoke         refuse a box: enrollment API 403 and the broker (CRL)
release        let a claimed box be claimed again
crl            rewrite the CRL from the database
manage         any Django management command (e.g. manage createsuperuser)
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser, ca: bool = False) -> None:
    p.add_argument("--db", default=os.environ.get("METERBOX_CLOUD_DB", "sqlite:///meterbox-cloud.sqlite3"),
                   help="database URL: sqlite:///FILE (default) or postgresql://USER:PASS@HOST:PORT/NAME")
    if ca:
        p.add_argument("--ca-dir", type=Path, default=os.environ.get("METERBOX_CLOUD_CA_DIR"), required=
                       "METERBOX_CLOUD_CA_DIR" not in os.environ, help="the vendor CA (meterbox-factory ca init)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m meterbox_cloud", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="the web service over HTTPS (gunicorn)")
    _common(s, ca=True)
    s.add_argument("--tls-cert", type=Path, required=True)
    s.add_argument("--tls-key", type=Path, required=True)
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8443)
    s.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    s.add_argument("--threads", type=int, default=4, help="threads per worker")
    s.add_argument("--secret-file", type=Path, default=Path("meterbox-cloud.secret"),
                   help="Django's secret key (made, mode 0600, if missing)")
    s.add_argument("--broker-host", default="localhost", help="the broker host name boxes are told")
    s.add_argument("--broker-port", type=int, default=8883)
    s.add_argument("--broker-ws-port", type=int, default=443)
    s.add_argument("--broker-ws-path", default="/mqtt")
    s.add_argument("--poll-interval", default="15m")
    s.add_argument("--retry-after", type=int, default=3, help="seconds an unclaimed box waits between calls")
    s.add_argument("--no-migrate", action="store_true", help="do not update the tables first")
    s.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS[/BITS]",
                   help="a load balancer whose X-Forwarded-For/-Host/-Proto headers are believed (repeatable)")
    i = sub.add_parser("ingest", help="one ingest worker on the shared subscription")
    _common(i)
    i.add_argument("--broker", required=True, metavar="HOST:PORT")
    i.add_argument("--ca-file", type=Path, required=True)
    i.add_argument("--cert", type=Path, required=True, help="the ingest identity's client certificate")
    i.add_argument("--key", type=Path, required=True)
    i.add_argument("--client-id", default=f"ingest-{os.uname().nodename}-1",
                   help="stable per worker: its persistent session keeps its queued messages")
    i.add_argument("--batch-size", type=int, default=500)
    i.add_argument("--stats-every", type=float, default=60.0, help="seconds between throughput log lines")
    m = sub.add_parser("migrate", help="create or update the tables")
    _common(m)
    imp = sub.add_parser("import-boxes", help="add the boxes of a factory vendor-import.json")
    _common(imp)
    imp.add_argument("file", type=Path)
    b = sub.add_parser("broker-config", help="write mosquitto.conf and its ACL")
    _common(b, ca=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--server-cert", type=Path, required=True, help="the broker's certificate (PEM)")
    b.add_argument("--server-key", type=Path, help="its key (default: the certificate's name with .key)")
    b.add_argument("--port", type=int, default=8883)
    b.add_argument("--bind", default="0.0.0.0")
    b.add_argument("--websockets-port", type=int)
    b.add_argument("--ingest-identity", default="ingest", help="CN of the ingest workers' certificate")
    b.add_argument("--run-as", default="mosquitto", help="the user Mosquitto drops to")
    b.add_argument("--log-file", type=Path)
    r = sub.add_parser("revoke", help="refuse a box (API 403, CRL for the broker)")
    _common(r, ca=True)
    r.add_argument("box")
    r.add_argument("--broker-pid-file", type=Path,
                   help="SIGHUP this broker so it reads the new CRL (broker-config writes DIR/mosquitto.pid)")
    r.add_argument("--reload-broker", metavar="COMMAND",
                   help='or run this after writing the CRL, e.g. "systemctl reload mosquitto"')
    rel = sub.add_parser("release", help="let a claimed box be claimed again")
    _common(rel)
    rel.add_argument("box")
    c = sub.add_parser("crl", help="rewrite the CRL from the database")
    _common(c, ca=True)
    mg = sub.add_parser("manage", help="a Django management command")
    _common(mg)
    mg.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _secret(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _setup(args: argparse.Namespace) -> None:
    """Settings come from the environment (settings.py); flags are put there before Django starts."""
    env = {"METERBOX_CLOUD_DB": args.db}
    if getattr(args, "ca_dir", None):
        env["METERBOX_CLOUD_CA_DIR"] = str(Path(args.ca_dir).resolve())
    if args.command == "serve":
        env.update({
            "METERBOX_CLOUD_SECRET_KEY": os.environ.get("METERBOX_CLOUD_SECRET_KEY") or _secret(args.secret_file),
            "METERBOX_CLOUD_BROKER_HOST": args.broker_host, "METERBOX_CLOUD_BROKER_PORT": str(args.broker_port),
            "METERBOX_CLOUD_BROKER_WS_PORT": str(args.broker_ws_port),
            "METERBOX_CLOUD_BROKER_WS_PATH": args.broker_ws_path,
            "METERBOX_CLOUD_POLL_INTERVAL": args.poll_interval,
            "METERBOX_CLOUD_RETRY_AFTER": str(args.retry_after),
        })
        if args.trusted_proxy:
            env["METERBOX_CLOUD_TRUSTED_PROXIES"] = ",".join(args.trusted_proxy)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meterbox_cloud.settings")
    import django

    django.setup()


def run(args: argparse.Namespace) -> int:
    _setup(args)
    from django.core.management import call_command, execute_from_command_line

    from . import boxes

    if args.command == "migrate":
        call_command("migrate", interactive=False, verbosity=1)
    elif args.command == "serve":
        from meterbox_factory.ca import load

        load(Path(args.ca_dir))  # a missing CA is one clear line now, not a 500 at the first box
        from django.conf import settings

        from .forwarded import trusted_networks
        trusted_networks(settings.METERBOX["TRUSTED_PROXIES"])   # a typo is one clear line, not a 500 per request
        if not args.no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        from .server import serve

        print(f"meterbox vendor service on https://{args.bind}:{args.port}/ (claim page /claim, "
              f"enrollment /api/v1/enroll, staff /staff/)", flush=True)
        serve(f"{args.bind}:{args.port}", str(args.tls_cert), str(args.tls_key), args.workers, args.threads)
    elif args.command == "ingest":
        from .worker import IngestWorker, WorkerSettings

        host, _, port = args.broker.rpartition(":")
        IngestWorker(WorkerSettings(host=host or "localhost", port=int(port), ca_file=args.ca_file,
                                    cert_file=args.cert, key_file=args.key, client_id=args.client_id,
                                    batch_size=args.batch_size, stats_every=args.stats_every)).run()
    elif args.command == "import-boxes":
        summary = boxes.import_boxes(args.file)
        print(f"{summary.added} boxes added, {summary.unchanged} already known")
    elif args.command == "broker-config":
        _broker_config(args)
    elif args.command == "revoke":
        path = boxes.revoke(args.box)
        print(f"{args.box} revoked: the enrollment API refuses it; CRL written to {path}")
        if args.broker_pid_file:
            pid = int(args.broker_pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            print(f"broker (pid {pid}) told to reload: it now refuses {args.box}'s certificate on every new "
                  f"connection (restart it to cut off a connection that is open now)")
        elif args.reload_broker:
            subprocess.run(shlex.split(args.reload_broker), check=True)
            print(f"broker reloaded ({args.reload_broker}): it now refuses {args.box}'s certificate")
        else:
            print("now make the broker read the new CRL: systemctl reload mosquitto (or kill -HUP its pid); "
                  "restart it to also cut off a connection that is open now")
    elif args.command == "release":
        boxes.release(args.box)
        print(f"{args.box} released: it can be claimed again")
    elif args.command == "crl":
        print(f"CRL written to {boxes.write_crl()}")
    elif args.command == "manage":
        execute_from_command_line(["meterbox_cloud", *args.args])
    return 0


def _broker_config(args: argparse.Namespace) -> None:
    from . import boxes
    from .broker import BrokerSettings, write

    ca_dir = Path(args.ca_dir).resolve()
    cert = args.server_cert.resolve()
    key = (args.server_key or cert.with_suffix(".key")).resolve()
    for path in (ca_dir / "ca.crt", cert, key):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; make it with meterbox-factory ca init / server-cert")
    crl = boxes.write_crl()
    settings: dict[str, Any] = dict(out=args.out.resolve(), ca_cert=ca_dir / "ca.crt", server_cert=cert,
                                    server_key=key, crl=crl, port=args.port, bind=args.bind,
                                    websockets_port=args.websockets_port, ingest_identity=args.ingest_identity,
                                    run_as=args.run_as, log_file=args.log_file.resolve() if args.log_file else None)
    conf = write(BrokerSettings(**settings))
    print(f"broker configuration written: {conf} (ACL {args.out / 'acl'}, CRL {crl})\n"
          f"ingest workers need a client certificate with CN {args.ingest_identity}: "
          f"meterbox-factory ca client-cert --dir {args.ca_dir} {args.ingest_identity}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .errors import BoxError
    from .dburl import DatabaseUrlError
    from meterbox_factory.ca import CaError

    try:
        return run(args)
    except (BoxError, CaError, DatabaseUrlError, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"meterbox_cloud: {err}", file=sys.stderr)
        return 2
