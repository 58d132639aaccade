"""mpdesign's solvers: mathematics only (no networks, no torch)."""

from solvers.result import SolveResult, Status, relative_gap

__all__ = ["SolveResult", "Status", "relative_gap"]
