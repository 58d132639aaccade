import pytest
import torch
from hypothesis import given, settings

from designer import zoo
from designer.network import build, example_input
from designer.spec import NetworkSpec, Stage, Stem
from tests.conftest import small_specs


@settings(max_examples=25, deadline=None)
@given(small_specs())
def test_forward_and_backward(spec):
    torch.manual_seed(0)
    model = build(spec).train()
    x = example_input(spec, batch_size=2)
    logits = model(x)
    assert logits.shape == (2, spec.num_classes)
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("family", ["basic", "bottleneck", "inverted"])
def test_a_few_sgd_steps_reduce_the_loss(family):
    torch.manual_seed(0)
    spec = NetworkSpec(resolution=16, num_classes=3, stem=Stem(out=8, k=3, stride=1),
                       stages=[Stage(family, 16, 16, 3, 2, 2)])
    model = build(spec)
    x = torch.randn(24, 3, 16, 16)
    y = torch.arange(24) % 3
    x[y == 1] += 1.0
    x[y == 2] -= 1.0
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_residual_blocks_start_as_identity():
    spec = NetworkSpec(resolution=8, stem=Stem(out=8, stride=1), stages=[Stage("bottleneck", 8, 4, 3, 2, 1)])
    model = build(spec).eval()
    second = model.stages[0][1]
    x = torch.randn(1, 8, 8, 8).relu()
    assert torch.allclose(second(x), x)


def test_model_keeps_its_spec():
    spec = zoo.load("tiny-cifar")
    assert build(spec).spec is spec
    assert build(spec)(example_input(spec)).shape == (2, 10)
