"""snmpsim serving the real recordings: the demo's simulator, shared with the tests
(cloud/meterbox_demo/simulator.py)."""

from meterbox_demo.simulator import Simulator, SimulatorError, responder_binary, snmp_get

__all__ = ["Simulator", "SimulatorError", "responder_binary", "snmp_get"]
