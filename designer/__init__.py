"""mpdesign's problems: network specs, their costs and scores, the networks they become."""

from importlib.metadata import PackageNotFoundError, version as _version

from designer.costs import Costs, Layer, count
from designer.entropy import DeepMADScores, deepmad_scores
from designer.errors import Error
from designer.spec import NetworkSpec, SpecError, Stage, Stem, from_tinynas

try:
    __version__ = _version("mpdesign")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Costs", "DeepMADScores", "DesignProblem", "Error", "Layer", "NetworkSpec", "SpecError", "Stage", "Stem", "build",
           "count", "deepmad_scores", "from_tinynas", "solve"]


def __getattr__(name: str):
    """``from designer import DesignProblem, solve, build`` without importing the solvers (pyomo,
    HiGHS) or torch modules until they are asked for."""
    if name in ("DesignProblem", "solve"):
        import designer.design as design
        return getattr(design, name)
    if name == "build":
        from designer.network import build
        return build
    raise AttributeError(f"module 'designer' has no attribute {name!r}")
