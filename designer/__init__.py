"""mpdesign's problems: network specs, their costs and scores, the networks they become."""

from designer.costs import Costs, Layer, count
from designer.entropy import DeepMADScores, deepmad_scores
from designer.spec import NetworkSpec, SpecError, Stage, Stem, from_tinynas

__all__ = ["Costs", "DeepMADScores", "Layer", "NetworkSpec", "SpecError", "Stage", "Stem", "count",
           "deepmad_scores", "from_tinynas"]
