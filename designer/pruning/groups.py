"""Channel pruning of any ``nn.Module``: Torch-Pruning's dependency graph (DepGraph, Fang et al.,
CVPR 2023) finds the groups of channels that must go together (a residual stream's channels in
every block that adds to it; a conv's outputs with its BN and the next layer's inputs), the
same curves-plus-DP machinery picks how many channels each group keeps under a MACs or
parameter budget, and Torch-Pruning cuts the module, which comes out physically smaller.

1. **Groups**: every group rooted at a conv or linear layer, the layer producing the model's
   output left out (its channels are the classes).
2. **Ranking**: within a group, channels by the L1 norm of all the weights they own across the
   group (Torch-Pruning's ``GroupMagnitudeImportance(p=1)``).
3. **Curves**: for each group and each kept fraction on a grid, a copy of the model with only
   that group's least important channels removed is really built (with ``criterion=OBS()``, the
   layers reading the cut channels re-fitted by least squares: :mod:`designer.pruning.refit`); its logits on the calibration
   batch (BatchNorm with the batch's statistics) are compared with the original's (mean squared
   error), and its parameters and MACs are recounted (``numel``, ``FlopCounterMode``).
4. **Allocation**: the multiple-choice knapsack DP (:mod:`solvers.knapsack`) over the groups,
   each group's cost the cost it saves alone. Savings of two groups can overlap (a conv between
   two groups loses rows to one and columns to the other), so the sum is an estimate: the
   chosen pruning is applied and recounted, and while the recount is over the budget the DP is
   re-solved with the budget lowered by the overshoot (times 2, 4, ... on later tries: an
   overshoot smaller than the DP's cost bins would not change its choice). The result never exceeds the budget on
   recount.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from designer import checks
from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of
from designer.pruning.curves import batch_statistics, calibration_hessians
from designer.pruning.measure import distortion
from designer.pruning.refit import Cuts, consumers, refit
from designer.user_model import calibration_tensor, count_macs
from solvers.extras import require
from solvers.knapsack import solve_dp
from solvers.result import Status

MAX_REPAIRS = 20  # DP re-solves with a lowered budget before giving up


def _tp():
    return require("torch_pruning", "channels")


def count_costs(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """(parameters, MACs of one input) recounted on the module: ``numel`` and torch's FLOP counter."""
    return sum(p.numel() for p in model.parameters()), count_macs(model, example_input[:1], depth=1)[0]


def _output_layer(model: nn.Module, example_input: torch.Tensor) -> nn.Module | None:
    """The last conv or linear layer run in a forward pass: its channels are the outputs."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, args, out: order.append(mod))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(example_input[:1])
    for h in hooks:
        h.remove()
    return order[-1] if order else None


@dataclass(frozen=True)
class GroupCurve:
    """One channel group: its root layer, its channels, and per option the channels kept, the
    distortion and the parameters and MACs the pruning saves alone."""

    root: str
    channels: int
    kept: list[int]
    distortion: list[float]
    params_saved: list[int]
    macs_saved: list[int]
    order: list[int]  # channel indices, least important first


@dataclass(frozen=True)
class ChannelPruning:
    """A channel-pruned model, whichever pruner made it (any module here, an mpdesign network in
    :mod:`designer.pruning.channels`): the smaller copy and its costs recounted on it."""

    model: nn.Module  # the pruned copy, physically smaller
    kept: dict[str, int]  # channels kept per group (by root layer) or per stage (stages[i].btn)
    params: int
    macs: int
    params_dense: int
    macs_dense: int
    predicted_distortion: float | None = None  # the allocation's summed single-group distortion
    curves: list = field(default_factory=list)  # the distortion curve of each group or stage
    repairs: int = 0  # DP re-solves needed to meet the budget on recount
    seconds: float = 0.0


def _groups(model: nn.Module, example_input: torch.Tensor):
    tp = _tp()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input[:1])
    ignored = [layer for layer in [_output_layer(model, example_input)] if layer is not None]
    groups = list(graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]))
    return graph, groups


def _root_name(model: nn.Module, group) -> str:
    names = {module: name for name, module in model.named_modules()}
    return names[group[0].dep.target.module]


@dataclass(frozen=True)
class Refit:
    """What re-fits the consumers of cut channels (:mod:`designer.pruning.refit`): the dense
    model's input Hessian and mean input of each consumer, on the calibration data."""

    hessians: dict[str, torch.Tensor]
    means: dict[str, torch.Tensor]

    @classmethod
    def measure(cls, model: nn.Module, calibration: torch.Tensor) -> Refit:
        means: dict = {}
        return cls(calibration_hessians(model, calibration, consumers(model), means=means), means)


def _prune_copy(model: nn.Module, example_input: torch.Tensor, removals: dict[str, list[int]],
                fit: Refit | None = None) -> nn.Module:
    """A copy of ``model`` with each group (by root layer name) losing the given channels; with
    ``fit``, the layers that read the cut channels re-fitted by least squares."""
    tp = _tp()
    pruned = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=example_input[:1])
    modules = dict(pruned.named_modules())
    names, cuts = {m: n for n, m in modules.items()}, Cuts()
    for root, indices in removals.items():
        if not indices:
            continue
        layer = modules[root]
        handler = tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels
        group = graph.get_pruning_group(layer, handler, idxs=list(indices))
        cuts.record(group, names)
        group.prune()
    if fit is not None:
        refit(model, pruned, cuts, fit.hessians, fit.means)
    return pruned


@torch.no_grad()
def _distortion(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> float:
    with batch_statistics(model):
        out = model(inputs)
    return distortion(out, reference)


def group_curves(model: nn.Module, example_input: torch.Tensor, calibration: torch.Tensor,
                 fractions: list[float] | None = None, progress=None,
                 dense: tuple[int, int] | None = None, fit: Refit | None = None) -> list[GroupCurve]:
    """Steps 1-3 of the module docstring; ``dense``: the model's (params, MACs) when known;
    ``fit``: each candidate's consumers re-fitted before it is measured."""
    tp = _tp()
    fractions = sorted(set(fractions or [i / 8 for i in range(1, 9)]) | {1.0})
    model.eval()
    params0, macs0 = dense or count_costs(model, example_input)
    with torch.no_grad(), batch_statistics(model):
        reference = model(calibration)
    _, groups = _groups(model, example_input)
    importance = tp.importance.GroupMagnitudeImportance(p=1)
    curves = []
    for index, group in enumerate(groups):
        root = _root_name(model, group)
        channels = len(group[0].idxs)
        order = torch.argsort(importance(group)).tolist()
        kept_options = sorted({max(1, round(f * channels)) for f in fractions} | {channels})
        distortion, params_saved, macs_saved = [], [], []
        for kept in kept_options:
            if kept == channels:
                distortion.append(0.0), params_saved.append(0), macs_saved.append(0)
                continue
            pruned = _prune_copy(model, example_input, {root: order[:channels - kept]}, fit)
            params, macs = count_costs(pruned, example_input)
            distortion.append(_distortion(pruned, calibration, reference))
            params_saved.append(params0 - params)
            macs_saved.append(macs0 - macs)
        curves.append(GroupCurve(root, channels, kept_options, distortion, params_saved, macs_saved, order))
        if progress is not None:
            progress(index + 1, len(groups), root)
    return curves


def preflight(model: nn.Module, example_input: torch.Tensor, fractions: list[float] | None = None) -> tuple[int, int]:
    """Before any curve: refuse, naming the module, a model channel pruning cannot cut or whose
    cut copy cannot run or be saved, and return the (parameters, MACs) of the smallest network it
    reaches (every group at its fewest channels). Minutes of curves never end in such a failure."""
    from designer.pruning.pruned_file import structure
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels:
            raise ValueError(f"--mode channels: {name} is a grouped convolution (groups={module.groups}), whose "
                             f"channel groups Torch-Pruning's dependency graph cannot cut consistently; use "
                             f"--mode weights")
    try:
        _, groups = _groups(model, example_input)
    except Exception as error:  # noqa: BLE001 - Torch-Pruning's tracing fails in many ways
        raise ValueError(f"--mode channels: Torch-Pruning cannot trace this model ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); use --mode weights") from None
    if not groups:
        raise ValueError("--mode channels: the model has no channel group to prune (every conv or linear feeds the "
                         "output directly); use --mode weights")
    fewest = min(fractions or [1 / 8])
    removals = {}
    for group in groups:
        channels = len(group[0].idxs)
        removals[_root_name(model, group)] = list(range(channels - max(1, round(fewest * channels))))
    try:
        smallest = _prune_copy(model, example_input, removals)
        with torch.no_grad():
            smallest.eval()(example_input[:1])
    except Exception as error:  # noqa: BLE001 - the user's forward, on widths it did not expect
        raise ValueError(f"--mode channels: a copy with fewer channels fails to run ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]}): the model's forward depends on widths pruning "
                         f"changes (e.g. a reshape to a stored width); use --mode weights") from None
    recorded = set(structure(smallest))
    before = {k: v.shape for k, v in model.state_dict().items()}
    for key, value in smallest.state_dict().items():
        owner = key.rpartition(".")[0]
        if before.get(key) != value.shape and owner not in recorded:
            kind = type(smallest.get_submodule(owner)).__name__ if owner else type(smallest).__name__
            raise ValueError(f"--mode channels: pruning changes {key} of {owner or 'the model'} ({kind}), whose "
                             f"shape a pruned-model file cannot record (convs, linears and norms only), so the "
                             f"result could not be loaded back; use --mode weights")
    return count_costs(smallest, example_input)


def prune_channels(model: nn.Module, example_input: torch.Tensor, calibration: torch.Tensor | Iterable,
                   max_macs: float | None = None, max_params: float | None = None,
                   fractions: list[float] | None = None, progress=None,
                   criterion: Criterion | str = MAGNITUDE, *, keep_macs: float | None = None,
                   sparsity: float | None = None) -> ChannelPruning:
    """Prune the channels of any module to at most ``max_macs`` MACs (per input) or
    ``max_params`` parameters, both recounted on the result (see the module docstring); or, as
    :func:`designer.pruning.prune_model` takes budgets, ``keep_macs`` (the fraction of MACs kept)
    or ``sparsity`` (the fraction of parameters removed). With ``criterion=OBS()`` every
    candidate and the result have the layers reading the cut channels re-fitted by least squares
    (:mod:`designer.pruning.refit`); channels are ranked by group magnitude either way."""
    if sum(b is not None for b in (max_macs, max_params, keep_macs, sparsity)) != 1:
        raise ValueError("give exactly one budget: max_macs, max_params (counts), keep_macs or sparsity (fractions)")
    start = time.perf_counter()
    device = next(model.parameters()).device
    example_input, calibration = example_input.to(device), calibration_tensor(calibration).to(device)
    params0, macs0 = count_costs(model, example_input)
    if keep_macs is not None:
        max_macs = checks.fraction(keep_macs, "keep_macs", include_zero=False) * macs0
    if sparsity is not None:
        max_params = (1 - checks.fraction(sparsity, "sparsity", include_one=False)) * params0
    by_macs = max_macs is not None
    limit = float(max_macs if by_macs else max_params)
    total0 = macs0 if by_macs else params0
    smallest = preflight(model, example_input, fractions)[1 if by_macs else 0]
    if limit < smallest:
        raise ValueError(_below_smallest(limit, smallest, total0, by_macs))
    fit = Refit.measure(model, calibration) if criterion_of(criterion).needs_hessian else None
    curves = group_curves(model, example_input, calibration, fractions, progress, dense=(params0, macs0), fit=fit)
    if limit >= total0:
        return ChannelPruning(copy.deepcopy(model), {c.root: c.channels for c in curves}, params0, macs0, params0,
                              macs0, predicted_distortion=0.0, curves=curves, seconds=time.perf_counter() - start)
    # knapsack on what is *kept*: each group's cost is the total minus what it saves alone
    saved = [c.macs_saved if by_macs else c.params_saved for c in curves]
    fixed = total0 - sum(max(s) for s in saved)  # what no group can remove
    costs = [[max(s) - v for v in s] for s in saved]
    losses = [c.distortion for c in curves]
    budget, repairs = limit - fixed, 0
    while True:
        result = solve_dp(costs, losses, max(budget, 0.0), bins=20_000)
        if result.status == Status.INFEASIBLE:
            raise ValueError(_below_smallest(limit, smallest, total0, by_macs))
        picks = {c.root: c.kept[i] for c, i in zip(curves, result.solution)}
        pruned = _prune_copy(model, example_input, {c.root: c.order[:c.channels - picks[c.root]] for c in curves}, fit)
        params, macs = count_costs(pruned, example_input)
        over = (macs if by_macs else params) - limit
        if over <= 0:
            return ChannelPruning(pruned, picks, params, macs, params0, macs0, predicted_distortion=result.objective,
                                  curves=curves, repairs=repairs, seconds=time.perf_counter() - start)
        repairs += 1
        if repairs > MAX_REPAIRS:
            raise ValueError(f"channel pruning: no allocation met the budget on recount after {MAX_REPAIRS} tries; "
                             f"the smallest network it reaches has {smallest:,} {'MACs' if by_macs else 'parameters'} "
                             f"({smallest / total0:.4f} of the model's): a budget nearer that is hard to meet exactly")
        budget -= over * 2 ** (repairs - 1)  # doubling: a small overshoot may not move the DP's binned costs


def _below_smallest(limit: float, smallest: int, total: int, by_macs: bool) -> str:
    """The budget is below what channel pruning reaches: the smallest reachable, as a count and
    as the fraction the command line takes (--keep-macs, or 1 - --sparsity of parameters)."""
    if by_macs:
        return (f"--keep-macs: {limit:,.0f} MACs is below the smallest network channel pruning reaches, {smallest:,} "
                f"MACs (every group at its fewest channels): --keep-macs at least {smallest / total:.4f}")
    return (f"--sparsity: {limit:,.0f} parameters kept is below the smallest network channel pruning reaches, "
            f"{smallest:,} parameters (every group at its fewest channels): --sparsity at most "
            f"{1 - smallest / total:.4f}")
