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
