"""The box's TOML configuration: one schema, every problem reported at once with file, line and fix.

schema.py   the values the daemon runs with, and the keys of each table
values.py   parsers for durations, sizes, hosts, ranges, proxies …
report.py   problems with their lines (a scanner that knows TOML's layout)
loader.py   reads a file: every table, every problem, then one ConfigProblems
"""

from meterbox.config.loader import load
from meterbox.config.report import ConfigProblems, Problem
from meterbox.config.schema import (DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR, TABLE_KEYS, AddressRange, Config, Credential,
                                    DiscoveryConfig, EnrollConfig, IPAddress, PanelConfig, PollConfig, PrinterTarget,
                                    ProxyConfig, Secret, StoreConfig, UplinkConfig)
from meterbox.config.values import parse_duration, parse_host, parse_proxy, parse_range, parse_size

__all__ = ["TABLE_KEYS", "AddressRange", "Config", "ConfigProblems", "Credential", "DEFAULT_RUNTIME_DIR", "DEFAULT_STATE_DIR",
           "DiscoveryConfig", "EnrollConfig", "PanelConfig", "IPAddress", "PollConfig", "PrinterTarget", "Problem", "ProxyConfig",
           "Secret", "StoreConfig", "UplinkConfig", "load", "parse_duration", "parse_host", "parse_proxy",
           "parse_range", "parse_size"]
