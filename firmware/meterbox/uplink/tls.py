"""TLS and the ways to the broker: strict verification, and one sentence for each way it fails.

Ways to the broker, for offices that block port 8883: MQTT over TLS on uplink.port, or
MQTT over WebSockets over TLS on uplink.websockets_port (443), either one through an
office proxy (HTTP CONNECT with Basic authentication, via PySocks, which paho uses for
proxies). A TLS failure is never a reason to try another way (it says the broker, the
CA or the certificates are wrong, not the path), and TLS is equally strict on every way.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import socks  # PySocks: paho's proxy support

from meterbox.config import ProxyConfig, UplinkConfig
from meterbox.errors import TlsError, UplinkError

class _NamedContext(ssl.SSLContext):
    """An SSLContext whose sockets check, and send as SNI, the name `server_name` when it is set.

    paho wraps its socket with server_hostname = the host it connects to; uplink.server_name
    names the broker's certificate when that differs (an address, an internal name).
    """

    server_name = ""

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                   self.server_name or server_hostname, session)


def tls_name(cfg: UplinkConfig) -> str:
    """The name the broker's certificate must carry: uplink.server_name, else uplink.host."""
    return cfg.server_name or cfg.host


def tls_context(cfg: UplinkConfig) -> ssl.SSLContext:
    """Strict TLS: the vendor CA only, host name checked, our client certificate presented.

    Built anew for each connection, so a renewed certificate file is used without a restart.
    The checked name (and SNI) is uplink.server_name when set, whatever address is dialled.
    """
    ctx = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # as ssl.create_default_context(), with the name of our choice
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cfg.ca_file:
        ctx.load_verify_locations(cafile=str(cfg.ca_file))
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.server_name = cfg.server_name
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


class ClosedEarly(ConnectionError):
    """The broker ended the connection after the TCP (and TLS) set-up but before its CONNACK."""


# The TLS alerts a broker sends about this box's certificate, by OpenSSL's reason code; each
# is a refusal of the certificate, said with what to do.
_REFUSED = "nothing was sent; check that the certificate is current and issued by the vendor, or re-enroll the box"
CERTIFICATE_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": ("the broker does not know the CA that issued this box's certificate {cert} "
                               "(TLS alert: unknown CA)", "nothing was sent; the certificate is not the vendor's: "
                               "re-enroll the box"),
    "SSLV3_ALERT_BAD_CERTIFICATE": ("the broker refused this box's client certificate {cert} (TLS alert: bad "
                                    "certificate)", _REFUSED),
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": ("the broker refused this box's client certificate {cert} (TLS alert: "
                                        "certificate unknown)", _REFUSED),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": ("the broker refused this box's client certificate {cert} (TLS alert: "
                                            "unsupported certificate)", _REFUSED),
    "SSLV3_ALERT_CERTIFICATE_REVOKED": ("the vendor has revoked this box's certificate {cert} (TLS alert: "
                                        "certificate revoked)", "nothing was sent; ask the vendor why: a revoked "
                                        "box reports again only once the vendor enrolls it anew"),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ("the broker says this box's certificate {cert} has expired (TLS alert: "
                                        "certificate expired)", "nothing was sent; `meterbox doctor` shows its "
                                        "dates; renew it by re-enrolling the box"),
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": ("the broker wants a client certificate and this box sent none (TLS alert: "
                                          "certificate required)", "nothing was sent; check uplink.cert_file and "
                                          "key_file in the config"),
}
# What says that the broker speaks only TLS versions older than 1.2: its alert, or its answer.
OLD_TLS = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
           "VERSION_TOO_LOW", "TLSV1_ALERT_INSUFFICIENT_SECURITY"}
NO_CIPHER = {"SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE"}


def tls_reason(err: BaseException | str) -> str | None:
    """OpenSSL's reason code for a TLS failure, e.g. SSLV3_ALERT_CERTIFICATE_REVOKED; None if none.

    From an ssl.SSLError, or from its text ("[SSL: CODE] ..."), as paho logs a failed read.
    """
    if isinstance(err, ssl.SSLError) and getattr(err, "reason", None):
        return str(err.reason)
    match = re.search(r"\[SSL: ([A-Z0-9_]+)\]", str(err))
    return match.group(1) if match else None


def _clean(text: str) -> str:
    """An SSL error's words without OpenSSL's codes: "[SSL: X] sslv3 alert y (_ssl.c:1)" -> "sslv3 alert y"."""
    return re.sub(r"^failed to receive on socket: |\[SSL: [A-Z0-9_]+\] ?| ?\(_ssl\.c:\d+\)", "", text).strip()


def explain_tls(err: BaseException, cfg: UplinkConfig, way: Way | None = None) -> UplinkError:
    """One sentence for a connection that failed before the broker accepted the box (its CONNACK).

    ERR is what connecting raised (DNS, TCP, proxy, TLS handshake) or, for a connection the
    broker ended before its CONNACK, the TLS error read then (with TLS 1.3 the broker judges
    the box's certificate just after the handshake) or ClosedEarly. Only a TLS alert about the
    box's certificate says the broker refused it; never a fallback to no verification.
    """
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
            setting = "uplink.server_name" if cfg.server_name else "uplink.host"
            return TlsError(f"{where}: its certificate is not valid for the name {tls_name(cfg)!r}; "
                            f"nothing was sent; check {setting} in the config")
        return TlsError(f"{where}: its certificate is not signed by the vendor CA in {cfg.ca_file} ({reason}); "
                        "nothing was sent; check uplink.ca_file")
    code = tls_reason(err) if isinstance(err, ssl.SSLError) else None
    if code in CERTIFICATE_ALERTS:
        what, todo = CERTIFICATE_ALERTS[code]
        return TlsError(f"{where}: {what.format(cert=cfg.cert_file)}; {todo}")
    if code in OLD_TLS:
        return TlsError(f"{where}: the broker offers only TLS 1.0/1.1, which this box refuses as insecure "
                        f"(TLS 1.2 or 1.3 is needed; {_clean(str(err))}); nothing was sent; tell the vendor "
                        "to enable TLS 1.2 or 1.3 on the broker")
    if code in NO_CIPHER:
        return TlsError(f"{where}: the broker and this box share no TLS cipher ({_clean(str(err))}); "
                        "nothing was sent; tell the vendor")
    if code == "WRONG_VERSION_NUMBER":
        return TlsError(f"{where}: this port does not speak TLS ({_clean(str(err))}); nothing was sent; "
                        f"check that port {way.port} is the broker's MQTT-over-TLS port")
    if isinstance(err, ssl.SSLError) and code and "ALERT" in code:
        return TlsError(f"{where}: the broker ended TLS ({_clean(str(err))}); nothing was sent; tell the vendor")
    if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or (
            isinstance(err, ssl.SSLError) and "eof" in str(err).lower()):
        return TlsError(f"{where}: the broker closed the connection during TLS set-up, without a TLS alert; "
                        f"nothing was sent; check that port {way.port} is the broker's MQTT-over-TLS port, "
                        "and that no firewall cuts the connection")
    if isinstance(err, ssl.SSLError):
        return TlsError(f"{where}: TLS failed ({_clean(str(err)) or err.__class__.__name__}); nothing was sent")
    if isinstance(err, ClosedEarly):
        return UplinkError(f"{where}: the broker closed the connection before accepting the box ({err}); "
                           "nothing was sent; readings are kept and sent later")
    if isinstance(err, FileNotFoundError):   # ssl leaves err.filename None: name the file from the config
        missing = [f"uplink.{key} {path}" for key, path in (("ca_file", cfg.ca_file), ("cert_file", cfg.cert_file),
                                                          ("key_file", cfg.key_file)) if path and not path.exists()]
        named = ", ".join(missing) or err.filename or "a certificate file"
        return UplinkError(f"{where}: {named} is missing; restore it or re-enroll the box")
    return UplinkError(f"{where}: cannot connect ({err.__class__.__name__}: {err}); "
                       "check the network and that port "
                       f"{way.port} is not blocked; readings are kept and sent later")


def early_error(text: str, said: str = "") -> BaseException:
    """What ended a connection before CONNACK, from paho's log TEXT of the failed read (or SAID by the broker)."""
    text = text.removeprefix("failed to receive on socket: ")
    if "[SSL:" in text:
        return ssl.SSLError(text)
    if "EOF" in text:
        return ssl.SSLEOFError(text)
    return ClosedEarly(text or said or "it gave no reason")


# CONNACK reason codes that refuse this box's identity (MQTT v5); others say "not now".
IDENTITY_REFUSED = {"Not authorized", "Bad user name or password", "Banned", "Client identifier not valid"}


def explain_connack(reason: str, cfg: UplinkConfig, way: Way, box_id: str) -> UplinkError:
    """The broker answered the box's CONNECT with a refusal (CONNACK reason REASON)."""
    where = way.describe(cfg.host)
    if reason in IDENTITY_REFUSED:
        return TlsError(f"{where} refused box {box_id} ({reason}): its certificate {cfg.cert_file} is not "
                        "allowed to connect; nothing was sent; check that the box is enrolled, or re-enroll it")
    return UplinkError(f"{where} did not accept box {box_id} now ({reason}); readings are kept and sent "
                       "on reconnect")


def explain_drop(reason: str, cfg: UplinkConfig, way: Way) -> UplinkError:
    """An established session (after CONNACK) ended: never the certificate's fault."""
    return UplinkError(f"disconnected from {way.describe(cfg.host).removeprefix('broker ')} ({_clean(reason)}); "
                       "readings are kept and sent on reconnect")
