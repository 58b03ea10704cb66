"""TLS and the ways to the broker: strict verification, and one sentence for each way it fails.

Ways to the broker, for offices that block port 8883: MQTT over TLS on uplink.port, or
MQTT over WebSockets over TLS on uplink.websockets_port (443), either one through an
office proxy (HTTP CONNECT with Basic authentication, via PySocks, which paho uses for
proxies). A TLS failure is never a reason to try another way (it says the broker, the
CA or the certificates are wrong, not the path), and TLS is equally strict on every way.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import socks  # PySocks: paho's proxy support

from meterbox.config import ProxyConfig, UplinkConfig
from meterbox.errors import TlsError, UplinkError

def tls_context(cfg: UplinkConfig) -> ssl.SSLContext:
    """Strict TLS: the vendor CA only, host name checked, our client certificate presented.

    Built anew for each connection, so a renewed certificate file is used without a restart.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cfg.ca_file) if cfg.ca_file else None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cfg.cert_file:
        ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None)
    return ctx


@dataclass(frozen=True)
class Way:
    """One way to the broker: a transport, its port, and the proxy in between (if any)."""

    transport: str                # "tcp" (MQTT over TLS) or "websockets"
    port: int
    proxy: ProxyConfig | None = None

    def describe(self, host: str) -> str:
        text = f"broker {host}:{self.port}"
        if self.transport == "websockets":
            text += " (MQTT over WebSockets)"
        if self.proxy:
            text += f" via proxy {self.proxy.host}:{self.proxy.port}"
        return text


def ways(cfg: UplinkConfig) -> list[Way]:
    """The ways to try, in order: MQTT on its port first, then WebSockets (per uplink.transport)."""
    mqtt_way = Way("tcp", cfg.port, cfg.proxy)
    ws_way = Way("websockets", cfg.websockets_port, cfg.proxy)
    return {"mqtt": [mqtt_way], "websockets": [ws_way]}.get(cfg.transport, [mqtt_way, ws_way])


def _proxy_error(err: BaseException) -> BaseException:
    """PySocks wraps the proxy's answer (e.g. an HTTPError "407: ...") in a GeneralProxyError."""
    inner = getattr(err, "socket_err", None)
    return inner if isinstance(err, socks.GeneralProxyError) and isinstance(inner, socks.ProxyError) else err


def path_failure(err: BaseException) -> bool:
    """True when this way could not be reached at all, so another way may work."""
    err = _proxy_error(err)
    if isinstance(err, (ssl.SSLError, FileNotFoundError)):
        return False
    if isinstance(err, socks.HTTPError) and str(err).startswith(("401", "407")):
        return False  # the proxy wants other credentials: the same on every way
    return isinstance(err, (OSError, mqtt.WebsocketConnectionError))


def explain_proxy(err: BaseException, way: Way, host: str) -> UplinkError | None:
    """One sentence for each way a proxy fails; None if ERR is not about the proxy."""
    proxy, err = way.proxy, _proxy_error(err)
    if proxy is None or not isinstance(err, socks.ProxyError):
        return None
    at = f"proxy {proxy.host}:{proxy.port}"
    text = str(err).split("\n")[0]
    if text.startswith(("401", "407")):
        return UplinkError(f"{at} refused the box's proxy user name or password ({text[:3]}); "
                           "check the user:password in uplink.proxy")
    if isinstance(err, socks.HTTPError):
        return UplinkError(f"{at} would not open a tunnel to {host}:{way.port} ({text}); ask the office IT "
                           f"to allow CONNECT to port {way.port}, or check uplink.proxy")
    if isinstance(err, socks.ProxyConnectionError):
        return UplinkError(f"{at} cannot be reached ({err.socket_err or text}); check uplink.proxy "
                           "and that the proxy is running")
    return UplinkError(f"{at}: {text}; check uplink.proxy")


def explain_tls(err: BaseException, cfg: UplinkConfig, way: Way | None = None) -> UplinkError:
    """One sentence for each way TLS fails, saying what to do; never a fallback to no verification."""
    way = way or Way("tcp", cfg.port, cfg.proxy)
    where = way.describe(cfg.host)
    if proxied := explain_proxy(err, way, cfg.host):
        return proxied
    if isinstance(err, ssl.SSLCertVerificationError):
        reason = (err.verify_message or str(err)).lower()
        if "expired" in reason:
            return TlsError(f"{where}: its certificate has expired (or this box's clock is wrong); "
                            "nothing was sent; check the time with `meterbox doctor` and tell the vendor")
        if "hostname" in reason or "ip address mismatch" in reason:
            return TlsError(f"{where}: its certificate is not valid for the name {cfg.host!r}; "
                            "nothing was sent; check uplink.host in the config")
        return TlsError(f"{where}: its certificate is not signed by the vendor CA in {cfg.ca_file} ({reason}); "
                        "nothing was sent; check uplink.ca_file")
    text = str(err).lower()
    if isinstance(err, ssl.SSLError) and ("alert" in text or "certificate" in text):
        return TlsError(f"{where}: the broker refused this box's client certificate {cfg.cert_file} "
                        f"({err.args[0] if err.args else err}); nothing was sent; "
                        "the certificate may be expired or not issued by the vendor: re-enroll the box")
    if isinstance(err, ssl.SSLError) and "eof" in text:
        return TlsError(f"{where}: the broker closed the connection during TLS set-up: it most likely "
                        f"refused this box's client certificate {cfg.cert_file}; nothing was sent; "
                        "check that the certificate is current and issued by the vendor, or re-enroll the box")
    if isinstance(err, ssl.SSLError):
        return TlsError(f"{where}: TLS failed ({err.args[0] if err.args else err}); nothing was sent")
    if isinstance(err, FileNotFoundError):   # ssl leaves err.filename None: name the file from the config
        missing = [f"uplink.{key} {path}" for key, path in (("ca_file", cfg.ca_file), ("cert_file", cfg.cert_file),
                                                          ("key_file", cfg.key_file)) if path and not path.exists()]
        named = ", ".join(missing) or err.filename or "a certificate file"
        return UplinkError(f"{where}: {named} is missing; restore it or re-enroll the box")
    return UplinkError(f"{where}: cannot connect ({err.__class__.__name__}: {err}); "
                       "check the network and that port "
                       f"{way.port} is not blocked; readings are kept and sent later")
