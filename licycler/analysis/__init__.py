"""Analyses of recorded runs: what a standard protocol measures, computed from the store."""

from licycler.analysis.sand import SandFit, sand_time_fit

__all__ = ["SandFit", "sand_time_fit"]
