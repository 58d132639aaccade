"""The dram objective (issue 24): every read of an input or weight after its first is traffic,
priced by every strategy that accepts it, checked against brute force and the simulator."""

from __future__ import annotations

import itertools
import random

import pytest

from designer.mapping import MappingError, MappingProblem, solve
from designer.mapping.strategies.baselines import baseline, required_bytes
from designer.mapping.strategies.cpsat import solve_mapping
from designer.mapping.core.graph import Operator, Tensor, TensorGraph
from designer.mapping.strategies.keep import keep_plan
from designer.mapping.core.objective import DRAM_BYTES, OFFCHIP_BYTES, compulsory_bytes
from designer.mapping.core.simulate import simulate
from designer.mapping.strategies.windows import solve_order


def with_weights(seed: int, n: int = 5) -> TensorGraph:
    """A random DAG of unit tensors whose operators also read one of two unit weights."""
    rng = random.Random(seed)
    operators, tensors = [], [Tensor("w0", 1, None), Tensor("w1", 1, None)]
    for i in range(n):
        parents = sorted(rng.sample(range(i), k=min(i, rng.randint(1, 2)))) if i else []
        weight = [f"w{rng.randint(0, 1)}"] if rng.random() < 0.8 else []
        operators.append(Operator(f"o{i}", [f"o{p}" for p in parents] + weight, [f"o{i}"]))
        tensors.append(Tensor(f"o{i}", 1, f"o{i}"))
    return TensorGraph(operators, [t for t in tensors if t.producer or any(t.name in o.inputs for o in operators)],
                       f"weights{seed}")


def brute_force_dram(graph: TensorGraph, capacity: int, orders=None) -> int | None:
    """Least dram traffic (spills, retrievals, re-reads of weights) over every schedule (or the
    given ``orders``) and residency, for unit tensors: a DP over (resident, hosted, read) sets.
    Reading a weight before it is needed never helps, so a weight is resident only when needed
    or kept from a step before."""
    best = None
    for order in orders or itertools.permutations(graph.operators):
        if not graph.is_schedule(list(order)):
            continue
        position = {op: i for i, op in enumerate(order)}
        last = {t: max((position[c] for c in cs), default=-1) for t, cs in graph.consumers.items()}
        states = {(frozenset(), frozenset(), frozenset()): 0}
        for t, op in enumerate(order):
            needed = frozenset(graph.operands(op))
            new_states: dict = {}
            for (resident, hosted, read), cost in states.items():
                optional = [x for x in resident | hosted if x not in needed and last[x] > t]
                for k in range(len(optional) + 1):
                    for keep in itertools.combinations(optional, k):
                        chosen = needed | frozenset(keep)
                        if len(chosen) > capacity:
                            continue
                        extra, new_hosted, new_read = 0, set(hosted), set(read)
                        for x in resident - chosen:
                            if graph.tensors[x].producer is not None and last[x] >= t and x not in hosted:
                                extra += 1
                                new_hosted.add(x)
                        for x in chosen - resident:
                            if graph.tensors[x].producer is None:
                                extra += x in read
                                new_read.add(x)
                            elif graph.tensors[x].producer != op:
                                if x not in hosted:
                                    break
                                extra += 1
                        else:
                            key = (chosen, frozenset(new_hosted), frozenset(new_read))
                            new_states[key] = min(cost + extra, new_states.get(key, float("inf")))
            states = new_states
        if states:
            best = min(min(states.values()), best if best is not None else float("inf"))
    return best


def spilling(count: int) -> list[tuple[TensorGraph, int]]:
    """(graph, capacity) pairs at M_R where re-reading weights or spilling is forced."""
    cases, seed = [], 0
    while len(cases) < count:
        graph = with_weights(seed)
        capacity = required_bytes(graph)
        if brute_force_dram(graph, capacity):
            cases.append((graph, capacity))
        seed += 1
    return cases


def test_the_objective_counts_every_reread_and_the_simulator_agrees():
    # x is read by a and c; b's output fills the scratchpad between them, so x is read twice
    graph = TensorGraph([Operator("a", ["x"], ["ya"]), Operator("b", ["ya"], ["yb"]),
                         Operator("c", ["yb", "x"], ["yc"])],
                        [Tensor("x", 4, None), Tensor("ya", 4, "a"), Tensor("yb", 8, "b"), Tensor("yc", 2, "c")])
    tight = baseline(graph, 14, objective=DRAM_BYTES)
    assert OFFCHIP_BYTES.of_steps(graph, tight.steps) == 0 and DRAM_BYTES.of_steps(graph, tight.steps) == 4
    replay = simulate(graph, tight.to_dict(graph), objective=DRAM_BYTES)
    assert replay.valid and replay.reload_bytes == 4 and replay.cost == 4
    assert tight.dram_bytes(graph) == {"compulsory": 4 + 2, "traffic": 4} == {
        "compulsory": replay.compulsory_bytes, "traffic": replay.offchip_bytes + replay.reload_bytes}
    roomy = baseline(graph, 16, objective=DRAM_BYTES)  # x stays: read once
    assert DRAM_BYTES.of_steps(graph, roomy.steps) == 0 and simulate(graph, roomy.to_dict(graph)).valid
    assert compulsory_bytes(graph) == 6
    lying = tight.to_dict(graph) | {"dram_bytes": {"compulsory": 6, "traffic": 0}}
    assert any(e.startswith("rule 10") for e in simulate(graph, lying).errors)


@pytest.mark.parametrize("index", range(4))
def test_cpsat_minimises_dram_traffic_exactly(index):
    graph, capacity = spilling(4)[index]
    outcome = solve_mapping(graph, capacity, time_limit=30, objective=DRAM_BYTES)
    replay = simulate(graph, outcome.mapping.to_dict(graph), objective=DRAM_BYTES)
    assert replay.valid, replay.errors
    assert outcome.result.status == "optimal"
    assert outcome.result.objective == replay.cost == brute_force_dram(graph, capacity) > 0


@pytest.mark.parametrize("index", range(4))
def test_the_order_models_minimise_dram_traffic_for_their_order(index):
    graph, capacity = spilling(4)[index]
    order = graph.topological_order()
    exact = brute_force_dram(graph, capacity, orders=[order])
    per_gap = solve_order(graph, order, capacity, 30, objective=DRAM_BYTES)
    keep = keep_plan(graph, capacity, 30, objective=DRAM_BYTES, order=order)
    for outcome in (per_gap, keep):
        replay = simulate(graph, outcome.mapping.to_dict(graph), objective=DRAM_BYTES)
        assert replay.valid, replay.errors
        assert replay.cost == outcome.result.objective
    assert per_gap.result.objective == exact and per_gap.result.status == "optimal"
    assert keep.result.bound <= exact <= keep.result.objective


@pytest.mark.parametrize("strategy", ["cpsat", "windows", "keep", "baseline"])
def test_every_dram_strategy_through_the_problem(strategy):
    graph, capacity = spilling(2)[1]
    result = solve(MappingProblem(graph, capacity, strategy, "dram", time_limit=10))
    assert result.replay.valid and result.replay.cost == result.solve.objective
    assert result.solve.objective >= brute_force_dram(graph, capacity)
    assert result.solve.objective <= min(result.baseline_costs().values())
    assert result.to_dict()["objective"] == "dram"


@pytest.mark.parametrize("strategy", ["ilp", "divide"])
def test_strategies_that_read_inputs_free_refuse_dram(strategy):
    graph, capacity = spilling(1)[0]
    with pytest.raises(MappingError, match="cannot minimise the dram objective"):
        MappingProblem(graph, capacity, strategy, "dram")


def test_the_forced_liveness_bound_counts_rereads_under_dram():
    from designer.mapping.bounds.liveness import liveness_bound
    stronger = 0
    for graph, capacity in spilling(12):
        exact = brute_force_dram(graph, capacity)
        bound = liveness_bound(graph, capacity, 10, objective=DRAM_BYTES).result.bound
        offchip_bound = liveness_bound(graph, capacity, 10).result.bound
        assert offchip_bound <= bound <= exact
        stronger += bound > offchip_bound
    assert stronger > 0  # the re-reads it counts raise it on some graphs
