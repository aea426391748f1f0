"""Clocks for simulated instruments (defined in :mod:`licycler.clock`, re-exported here)."""

from licycler.clock import Clock, RealTimeClock, VirtualClock

__all__ = ["Clock", "RealTimeClock", "VirtualClock"]
