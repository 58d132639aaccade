from __future__ import annotations

from hypothesis import strategies as st

from designer.spec import FAMILIES, NetworkSpec, Stage, Stem


@st.composite
def small_specs(draw, families=FAMILIES) -> NetworkSpec:
    """Random small specs of every family, quick to materialise and run."""
    n_stages = draw(st.integers(1, 3))
    stages = [
        Stage(family=draw(st.sampled_from(families)), out=draw(st.integers(1, 24)), btn=draw(st.integers(1, 24)),
              k=draw(st.sampled_from([1, 3, 5])), L=draw(st.integers(1, 3)), stride=draw(st.sampled_from([1, 2])))
        for _ in range(n_stages)
    ]
    return NetworkSpec(
        resolution=draw(st.integers(5, 33)),
        in_channels=draw(st.integers(1, 4)),
        num_classes=draw(st.integers(1, 12)),
        stem=Stem(out=draw(st.integers(1, 24)), k=draw(st.sampled_from([1, 3, 5, 7])),
                  stride=draw(st.sampled_from([1, 2]))),
        stages=stages,
        head=draw(st.one_of(st.none(), st.integers(1, 32))),
        name=draw(st.text(max_size=8).filter(str.isprintable)),  # a name is printable text (spec.py)
    )


# a small bottleneck network on 8x8 digits: what the command-line tests of prune and quantize train
DIGITS_SPEC = {"resolution": 8, "in_channels": 1, "num_classes": 10, "stem": {"out": 8, "k": 3, "stride": 1},
               "stages": [{"family": "bottleneck", "out": 16, "btn": 8, "k": 3, "L": 2, "stride": 1},
                          {"family": "bottleneck", "out": 32, "btn": 16, "k": 3, "L": 1, "stride": 2}]}


def train_digits_checkpoint(tmp_path_factory, epochs: int = 2):
    """``mpdesign train`` of :data:`DIGITS_SPEC`: the checkpoint's path."""
    import json

    from typer.testing import CliRunner

    from designer.cli import app
    folder = tmp_path_factory.mktemp("run")
    (folder / "spec.json").write_text(json.dumps(DIGITS_SPEC))
    result = CliRunner().invoke(app, ["train", str(folder / "spec.json"), "--dataset", "digits", "--epochs",
                                      str(epochs), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run" / "checkpoint.pt"
