r"""Keep or spill, for one schedule: an interval MILP over each tensor's idle stretches.

For a fixed order the address-free problem is a choice per *gap*: a produced tensor T is
needed at its producer's step and at its consumers' steps, u_0 < u_1 < ... < u_k (positions in
the order); between two needs, over the steps strictly inside (u_{i-1}, u_i), it is either kept
resident (occupying its bytes there) or dropped and read back at u_i. A dropped tensor is
written to host once, the first time (a later drop finds the host copy). Variables:

  y[T,i]  T is kept over gap i (binary; a gap without steps inside is kept for free)
  s[T]    T is ever written to host (binary)

(K1) spilled once if ever dropped:  s[T] >= 1 - y[T,i]                 for every gap i of T
(K2) capacity at every step t:      operands(t) + sum_{gaps (T,i) around t} size_T y[T,i] <= M
objective: minimise sum_T price_T (sum_i (1 - y[T,i]) + s[T])

operands(t) counts every input, weight and output of the step's operator (sizes divided by
their GCD). Without addresses this is exact for the order: its optimum is the least traffic
any mapping of that order can have (a lower bound in ``fixed`` mode) and, unlike the
time-indexed models (:mod:`designer.mapping.bounds.milp`), it has one variable per gap, not per step.

:func:`keep_plan` turns a solution into a mapping: laid out offline, all runs at once
(:mod:`designer.mapping.strategies.layout`), or by the step-by-step planner of the baselines
(:func:`designer.mapping.strategies.baselines.plan`) evicting the tensors the MILP drops before any it
keeps, whichever is cheaper. Fragmentation can force more evictions than the MILP's (the
result says how many bytes); :mod:`designer.mapping.stages` then repairs the cheapest mapping
window by window with addresses (:func:`designer.mapping.strategies.windows.window_search`).
"""

from __future__ import annotations

from dataclasses import replace

import pyomo.environ as pyo

from designer.deadline import Deadline
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping, MappingOutcome
from designer.mapping.strategies.baselines import KEPT_ON_TOP, PLACEMENTS, PlacementError, baseline, plan
from designer.mapping.strategies.layout import Gap, gaps, layout
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from designer.mapping.core.units import gcd_unit, in_objective_units, transfer_prices
from solvers import highs
from solvers.result import SolveResult, Status, relative_gap


MILP_SHARE = 0.8  # of the time limit, for the keep-or-spill MILPs (the rest lays the plan out)


def build_model(graph: TensorGraph, order: list[str], scratchpad_bytes: int,
                objective: Objective = OFFCHIP_BYTES) -> pyo.ConcreteModel:
    """The model of the module docstring; ``m.gaps`` lists the gaps by the index of ``m.y``."""
    found = gaps(graph, order, objective)
    unit = gcd_unit(graph, scratchpad_bytes)
    capacity = scratchpad_bytes // unit
    price, price_unit = transfer_prices(graph, objective)
    operands = [sum(graph.tensors[n].bytes for n in dict.fromkeys(graph.operands(op))) // unit for op in order]
    if max(operands) > capacity:
        t = max(range(len(order)), key=operands.__getitem__)
        raise ValueError(f"scratchpad_bytes: {scratchpad_bytes} is below step {t}'s ({order[t]}) own operands, "
                         f"{operands[t] * unit} bytes")
    m = pyo.ConcreteModel(name=f"keep-{graph.name}")
    m.y = pyo.Var(range(len(found)), domain=pyo.Binary)
    # inputs and weights (gapped under the dram objective) have their host copy from the start
    dropped_ever = sorted({gap.tensor for gap in found if graph.tensors[gap.tensor].producer is not None})
    m.s = pyo.Var(dropped_ever, domain=pyo.Binary)
    m.written_once, m.capacity = pyo.ConstraintList(), pyo.ConstraintList()  # (K1), (K2)
    # (K1) written to host once if dropped over any gap
    for i, gap in enumerate(found):
        if graph.tensors[gap.tensor].producer is not None:
            m.written_once.add(m.s[gap.tensor] >= 1 - m.y[i])
    # (K2) capacity at every step: the step's operands plus the kept tensors idle around it
    around: list[list[int]] = [[] for _ in order]
    for i, gap in enumerate(found):
        for t in range(gap.first, gap.last + 1):
            around[t].append(i)
    for t, kept in enumerate(around):
        free = capacity - operands[t]
        if kept and sum(graph.tensors[found[i].tensor].bytes // unit for i in kept) > free:
            m.capacity.add(pyo.quicksum(graph.tensors[found[i].tensor].bytes // unit * m.y[i] for i in kept) <= free)
    m.traffic = pyo.Objective(expr=pyo.quicksum(price[gap.tensor] * (1 - m.y[i]) for i, gap in enumerate(found))
                              + pyo.quicksum(price[name] * m.s[name] for name in dropped_ever), sense=pyo.minimize)
    m.gaps, m.price_unit = found, price_unit
    return m


def solve_keep(graph: TensorGraph, order: list[str], scratchpad_bytes: int, time_limit: float = 60.0, *,
               objective: Objective = OFFCHIP_BYTES, threads: int = 1) -> tuple[SolveResult, set[Gap]]:
    """HiGHS on the model: its report (objective and bound in the objective's unit, for this
    order and without addresses) and the gaps its best solution keeps (empty without one)."""
    deadline = Deadline.starting_now(time_limit)
    model = build_model(graph, order, scratchpad_bytes, objective)
    if not model.gaps:  # every tensor is used at consecutive steps: nothing to decide
        return SolveResult(Status.OPTIMAL, objective=0, bound=0, gap=0.0, seconds=deadline.elapsed(),
                           solver="keep-or-spill", message="no idle gaps"), set()
    result = highs.solve(model, time_limit=max(0.5, deadline.left()), rel_gap=1e-6,
                         threads=threads)
    result = in_objective_units(result, model.price_unit).replace(seconds=deadline.elapsed(),
                                                                 solver="highs (keep-or-spill, fixed order)")
    if result.objective is None:
        return result, set()
    return result, {gap for i, gap in enumerate(model.gaps) if pyo.value(model.y[i]) > 0.5}


def moves(graph: TensorGraph, order: list[str], dropped: list[Gap]) -> list[list[str]]:
    """Orders that may save a read-back: for each dropped gap between two needs of a tensor, the
    later operator moved up next to the earlier one, or the earlier moved down next to the
    later, where the dependencies allow (most expensive tensors first)."""
    position = {op: t for t, op in enumerate(order)}
    found = []
    for gap in sorted(dropped, key=lambda g: -graph.tensors[g.tensor].bytes):
        earlier, later = order[gap.first - 1], order[gap.last + 1]
        if all(position[p] < gap.first for p in graph.dag.predecessors(later)):
            found.append(order[:gap.first] + [later] + [op for op in order[gap.first:] if op != later])
        if all(position[s] > gap.last for s in graph.dag.successors(earlier)):
            rest = [op for op in order[:gap.last + 1] if op != earlier]
            found.append(rest + [earlier] + order[gap.last + 1:])
    return found


def best_order(graph: TensorGraph, orders: list[list[str]], scratchpad_bytes: int, time_limit: float, *,
               objective: Objective = OFFCHIP_BYTES, threads: int = 1,
               reorder: bool = True) -> tuple[list[str], SolveResult, set[Gap]] | None:
    """The order among ``orders`` whose keep-or-spill optimum is least, then (``reorder``)
    improved by :func:`moves` while they help and time remains; None if no plan came in time."""
    deadline = Deadline.starting_now(time_limit)
    best = None
    for order in orders:
        result, kept = solve_keep(graph, order, scratchpad_bytes, max(0.5, deadline.left()),
                                  objective=objective, threads=threads)
        if result.objective is not None and (best is None or result.objective < best[1].objective):
            best = (order, result, kept)
    improved = reorder and best is not None
    while improved and not deadline.expired():
        order, result, kept = best
        improved = False
        for candidate in moves(graph, order, [g for g in gaps(graph, order, objective) if g not in kept]):
            if deadline.expired():
                break
            trial, trial_kept = solve_keep(graph, candidate, scratchpad_bytes, deadline.left(),
                                           objective=objective, threads=threads)
            if trial.objective is not None and trial.objective < result.objective:
                best, improved = (candidate, trial, trial_kept), True
                break
    return best


def keep_plan(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
              objective: Objective = OFFCHIP_BYTES, order: list[str] | None = None,
              orders: list[list[str]] | None = None, threads: int = 1) -> MappingOutcome:
    """The mapping strategy. With ``order`` (``fixed`` mode): the keep-or-spill plan of that
    order, laid out; the result's bound is the MILP's, a bound for that order. Otherwise the
    best plan over ``orders`` (default: the graph's topological order) improved by moving
    operators (:func:`best_order`); no bound (other orders were not searched)."""
    deadline = Deadline.starting_now(time_limit)
    fixed = order is not None
    try:
        planned = best_order(graph, [order] if fixed else orders or [graph.topological_order()], scratchpad_bytes,
                             MILP_SHARE * time_limit, objective=objective, threads=threads, reorder=not fixed)
    except ValueError as error:  # the scratchpad is below a step's own operands
        return MappingOutcome(None, SolveResult(Status.INFEASIBLE, seconds=deadline.elapsed(),
                                                solver="keep-or-spill", message=str(error)))
    if planned is None:
        return MappingOutcome(None, SolveResult(Status.NO_SOLUTION, seconds=deadline.elapsed(),
                                                solver="keep-or-spill", message="no order has a plan in time"))
    order, milp, kept = planned
    kept_at = {(gap.tensor, t) for gap in kept for t in range(gap.first, gap.last + 1)}
    # the cheapest layout of the plan: offline (all runs at once), else step by step
    mapping = layout(graph, order, kept, scratchpad_bytes, objective)
    failures = [] if mapping is not None else ["the offline layout found no room"]
    for placement in (KEPT_ON_TOP, *PLACEMENTS):
        if mapping is not None and (objective.of_steps(graph, mapping.steps) == milp.objective
                                    or deadline.expired()):
            break  # laid out at the plan's cost (nothing to gain), or out of time
        try:
            stepwise = plan(graph, order, scratchpad_bytes, "belady", placement, objective=objective,
                            keep=lambda name, t: (name, t) in kept_at)
        except PlacementError as error:
            failures.append(str(error))
            continue
        if mapping is None or objective.of_steps(graph, stepwise.steps) < objective.of_steps(graph, mapping.steps):
            mapping = stepwise
    if mapping is None:  # the kept set fragments the scratchpad (at M_R, say): the order's Belady plan instead
        candidates = [order] + [o for o in ([] if fixed else orders or []) if o != order]
        mapping = _unplanned(graph, candidates, scratchpad_bytes, objective, failures)
    if mapping is None:
        return MappingOutcome(None, milp.replace(status=Status.NO_SOLUTION, objective=None, gap=None,
                                                 seconds=deadline.elapsed(),
                                                 message=f"the keep-or-spill plan could not be laid out: "
                                                         f"{failures[0]}"))
    cost = objective.of_steps(graph, mapping.steps)
    laid_out = ("laid out at the plan's cost" if cost == milp.objective else
                f"laying it out cost {cost - milp.objective:,} {objective.unit} more (fragmentation)")
    bound = milp.bound if fixed else None
    gap = relative_gap(cost, bound)
    status = Status.OPTIMAL if gap is not None and gap <= 1e-9 else Status.FEASIBLE
    return MappingOutcome(
        replace(mapping, method=f"keep-or-spill MILP, {mapping.method.split('/')[-1]}"),
        SolveResult(status, objective=cost, bound=bound, gap=gap, seconds=deadline.elapsed(),
                    solver="keep-or-spill", model_size=milp.model_size,
                    message=f"keep-or-spill plan ({milp.status} for its order: {milp.objective:,} {objective.unit}"
                            f", bound {'none' if milp.bound is None else f'{milp.bound:,}'}); {laid_out}"))


def _unplanned(graph: TensorGraph, orders: list[list[str]], scratchpad_bytes: int, objective: Objective,
               failures: list[str]) -> Mapping | None:
    """The orders' Belady baselines (no tensor held by the plan; the CP-SAT layout where every
    placement rule fails), the cheapest: what the strategy returns when the plan cannot be placed
    (found by hypothesis: at M_R a 6-operator graph's min-peak order leaves a 1-byte operand
    splitting the scratchpad before a 4-byte output, under every placement rule; its topological
    order lays out). None when CP-SAT proves that no order given has a mapping at all."""
    found = []
    for order in orders:
        try:
            found.append(baseline(graph, scratchpad_bytes, order, "belady", objective=objective))
        except PlacementError as error:
            failures.append(str(error))
    return min(found, key=lambda m: objective.of_steps(graph, m.steps), default=None)

