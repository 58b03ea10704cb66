"""The demo's process helpers, shared with the tests (cloud/meterbox_demo/process.py)."""

from meterbox_demo.process import Service, free_tcp_port, free_udp_port, log_tail, spawn, terminate

__all__ = ["Service", "free_tcp_port", "free_udp_port", "log_tail", "spawn", "terminate"]
