import math

import pytest

from designer import zoo
from designer.entropy import deepmad_scores, depth_penalty


def test_released_r50_figures():
    scores = deepmad_scores(zoo.load("deepmad-r50"))
    assert scores.layers == 157
    assert round(scores.effectiveness, 3) == 0.300
    assert scores.score == pytest.approx(48919, abs=1.0)
    assert scores.stage_channels == [32, 128, 512, 1024, 1232]
    assert scores.stage_resolution == [112, 56, 28, 14, 7]


def test_stage_entropy_by_hand_on_a_two_unit_network():
    from designer.spec import NetworkSpec, Stage, Stem
    spec = NetworkSpec(resolution=32, stem=Stem(out=8, k=3, stride=2),
                       stages=[Stage("bottleneck", out=16, btn=4, k=3, L=1, stride=2)])
    scores = deepmad_scores(spec, alpha=[1.0, 2.0])
    logstd_stem = 0.5 * math.log(3 * 9)
    logstd_block = 0.5 * math.log(8 * 4 * 9 * 4)
    h0 = (math.log(8) + math.log(16 ** 2)) * logstd_stem
    h1 = (math.log(16) + math.log(8 ** 2)) * (logstd_stem + logstd_block)
    assert scores.stage_entropy == pytest.approx([h0, h1])
    assert scores.score == pytest.approx(h0 + 2 * h1)
    rho1 = 4 / math.exp((math.log(27) + math.log(8 * 4 * 9 * 4)) / 4)
    assert scores.rho == pytest.approx([1 / 27, rho1])


def test_other_stage_counts_get_their_own_default_alpha():
    spec = zoo.load("tiny-cifar")
    default = deepmad_scores(spec)
    assert default.alpha == (1.0, 1.0, 8.0)
    assert default.score == pytest.approx(deepmad_scores(spec, alpha=[1, 1, 8]).score)
    with pytest.raises(ValueError, match="got 2 stage weights for 3"):
        deepmad_scores(spec, alpha=[1, 1])
    assert deepmad_scores(spec, alpha=[1, 1, 4]).score > 0


def test_depth_penalty_leaves_out_first_two_bottleneck_stages():
    depths = [12, 13, 15]
    mean = sum(depths) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in depths) / 3)
    assert depth_penalty(zoo.load("deepmad-r50")) == pytest.approx(10 * math.exp(std))
    inverted = zoo.load("deepmad-29m-224")
    depths = [s.L for s in inverted.stages]
    mean = sum(depths) / len(depths)
    std = math.sqrt(sum((d - mean) ** 2 for d in depths) / len(depths))
    assert depth_penalty(inverted) == pytest.approx(10 * math.exp(std))
