"""meterbox: reads printer billing meters over SNMP and forwards them to the vendor over TLS."""

__version__ = "0.1.0"
