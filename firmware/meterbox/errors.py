"""Errors a field technician can act on: str() is one sentence saying what, where and what to do."""

from __future__ import annotations


class MeterboxError(Exception):
    """Base class. str() is one sentence a field technician can act on."""

    #: short code shown by `meterbox status` and mapped to an LED blink code
    code = "error"


class ConfigError(MeterboxError, ValueError):
    """The configuration file is wrong; nothing was changed."""

    code = "config"


class SnmpError(MeterboxError):
    """A printer could not be read."""

    code = "snmp"


class PrinterUnreachable(SnmpError, TimeoutError):
    """No answer from the printer within the timeout and retries."""

    code = "unreachable"


class SnmpAuthError(SnmpError, PermissionError):
    """The printer refused our SNMP credentials (v3), or ignored our community (v1/v2c)."""

    code = "snmp-auth"


class PrinterMisbehaves(SnmpError):
    """The printer answers, but wrongly: malformed messages, a table without end, a poll without end."""

    code = "snmp-bad-answer"


class NotAPrinter(SnmpError):
    """The device answers SNMP but has neither Printer-MIB nor an hrDevicePrinter row."""

    code = "not-a-printer"


class StoreError(MeterboxError, OSError):
    """The local store cannot be read or written (full disk, read-only, corrupt)."""

    code = "store"


class UplinkError(MeterboxError, ConnectionError):
    """The vendor broker cannot be reached or refused us."""

    code = "uplink"


class TlsError(UplinkError):
    """A TLS problem: wrong CA, wrong host name, expired or refused certificate."""

    code = "tls"
