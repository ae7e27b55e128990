"""A simulated Windows node: a WS-Management server that unmodified pywinrm drives, on loopback."""

from simulator.winrm.faults import Counters, Faults
from simulator.winrm.node import SimulatedFleet, SimulatedNode

__all__ = ["Counters", "Faults", "SimulatedFleet", "SimulatedNode"]
