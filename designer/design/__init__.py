"""Architecture design as a mathematical program (DeepMAD)."""

from designer.design.problem import DesignError, DesignProblem, DesignResult
from designer.design.solve import solve

__all__ = ["DesignError", "DesignProblem", "DesignResult", "solve"]
