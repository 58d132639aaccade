"""Mapping: importers, budgets, baselines and CP-SAT, every mapping replayed by the simulator."""

import itertools
import json
import random
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from designer.mapping.strategies.baselines import (
    PLACEMENTS,
    PlacementError,
    baseline,
    greedy_min_peak_order,
    plan,
    required_bytes,
)
from designer.mapping.strategies.cpsat import solve_mapping
from designer.mapping.core.graph import (
    GraphError,
    Operator,
    Tensor,
    TensorGraph,
    from_hmcos,
)
from designer.mapping.sources.importer import from_torch
from designer.mapping.sources import load_graph
from designer.mapping.core.io import Mapping
from designer.mapping.problem import MappingError, MappingProblem, budgets, peak_of
from designer.mapping.stages import solve
from designer.mapping.core.simulate import simulate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "graphs"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/graphs is not present")


def report(outcome):
    """A strategy's outcome as (its own result, its mapping)."""
    return outcome.result, outcome.mapping


def chain_with_skip(sizes=(4, 4, 4, 4)) -> TensorGraph:
    """a -> b -> c -> d with a skip a -> d; one tensor per operator."""
    names = "abcd"
    inputs = {"a": [], "b": ["a"], "c": ["b"], "d": ["c", "a"]}
    return TensorGraph([Operator(n, inputs[n], [n]) for n in names],
                       [Tensor(n, s, n) for n, s in zip(names, sizes)], "skip")


def random_dag(seed: int, n: int = 6, unit: bool = True) -> TensorGraph:
    rng = random.Random(seed)
    operators, tensors = [], []
    for i in range(n):
        parents = sorted(rng.sample(range(i), k=min(i, rng.randint(1, 2)))) if i else []
        operators.append(Operator(f"o{i}", [f"o{p}" for p in parents], [f"o{i}"]))
        tensors.append(Tensor(f"o{i}", 1 if unit else rng.randint(1, 4), f"o{i}"))
    return TensorGraph(operators, tensors, f"random{seed}")


def brute_force_traffic(graph: TensorGraph, capacity: int, orders=None) -> int | None:
    """Least spilled + retrieved tensors over every schedule (or the given ``orders``) and every
    residency choice, for unit-size tensors (where addresses cannot fragment): a DP over
    (resident, hosted) sets."""
    best = None
    for order in orders or itertools.permutations(graph.operators):
        if not graph.is_schedule(list(order)):
            continue
        position = {op: i for i, op in enumerate(order)}
        last = {t: max((position[c] for c in cs), default=position[graph.tensors[t].producer])
                for t, cs in graph.consumers.items()}
        states = {(frozenset(), frozenset()): 0}
        for t, op in enumerate(order):
            needed = frozenset(graph.operands(op))
            produced = {name for name, tensor in graph.tensors.items() if position[tensor.producer] <= t}
            new_states = {}
            for (resident, hosted), cost in states.items():
                optional = [x for x in produced - needed if last[x] > t and (x in resident or x in hosted)]
                for k in range(len(optional) + 1):
                    for keep in itertools.combinations(optional, k):
                        chosen = needed | frozenset(keep)
                        if len(chosen) > capacity:
                            continue
                        extra, new_hosted = 0, set(hosted)
                        for x in resident - chosen:
                            if last[x] >= t and x not in hosted:
                                extra += 1
                                new_hosted.add(x)
                        for x in chosen - resident:
                            if graph.tensors[x].producer != op:
                                if x not in hosted:
                                    break
                                extra += 1
                        else:
                            key = (chosen, frozenset(new_hosted))
                            if cost + extra < new_states.get(key, float("inf")):
                                new_states[key] = cost + extra
            states = new_states
        if states:
            value = min(states.values())
            best = value if best is None or value < best else best
    return best


def test_graph_validation_errors():
    with pytest.raises(GraphError, match="size must be a positive integer"):
        TensorGraph([Operator("a", [], ["x"])], [Tensor("x", 0, "a")])
    with pytest.raises(GraphError, match="tensor 'y' is not defined"):
        TensorGraph([Operator("a", ["y"], ["x"])], [Tensor("x", 1, "a")])
    with pytest.raises(GraphError, match="cycle"):
        TensorGraph([Operator("a", ["y"], ["x"]), Operator("b", ["x"], ["y"])], [Tensor("x", 1, "a"), Tensor("y", 1, "b")])
    with pytest.raises(GraphError, match="dangling"):
        from designer.mapping.core.graph import from_node_link
        from_node_link({"nodes": [{"id": 0, "cost_ram": 4}], "links": [{"source": 0, "target": 9}]})


def test_hmcos_import():
    data = {"name": "tiny", "dummy_input_tensors": ["in"], "graph_output_tensors": ["y"],
            "tensor_list": ["in", "x", "y"], "tensor_sizes": [8, 4, 2],
            "dag": [{"name": "conv", "input_nodes": [], "input_tensors": ["in"], "output_tensors": ["x"]},
                    {"name": "relu", "input_nodes": ["conv"], "input_tensors": ["x"], "output_tensors": ["y"]}]}
    graph = from_hmcos(data)
    assert graph.tensors["in"].producer is None and graph.tensors["y"].producer == "relu"
    assert required_bytes(graph) == 12


def test_torch_import_of_a_designed_network():
    from designer import zoo
    from designer.network import build, example_input
    spec = zoo.load("tiny-cifar")
    model = build(spec).eval()
    graph = from_torch(model, example_input(spec, 1), include_weights=True)
    conv_weights = [t for name, t in graph.tensors.items() if name.endswith(".weight") and t.producer is None]
    assert conv_weights and graph.topological_order()
    assert graph.tensors["x"].bytes == 3 * 32 * 32  # the input, 1 byte per element


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 8), st.booleans())
@example(seed=5494, n=5, unit=False)  # every placement rule fails at M_R; the CP-SAT layout does not
def test_baselines_are_valid_at_every_budget_from_required(seed, n, unit):
    graph = random_dag(seed, n, unit)
    required = required_bytes(graph)
    for capacity in (required, required + 1, peak_of(graph, greedy_min_peak_order(graph))):
        for eviction in ("belady", "greedy"):
            try:
                mapping = baseline(graph, max(capacity, required), eviction=eviction)
            except PlacementError as err:  # acceptable only when no mapping of the order exists
                assert "proves that no mapping" in str(err)
                continue
            replay = simulate(graph, mapping.to_dict(graph))
            assert replay.valid, replay.errors


def test_baseline_falls_back_to_an_exact_layout_when_every_rule_fails():
    graph = random_dag(5494, 5, unit=False)  # a chain that fits M_R = 8 bytes only with o0 at address 1..3
    for placement in PLACEMENTS:
        with pytest.raises(PlacementError):
            plan(graph, graph.topological_order(), required_bytes(graph), "belady", placement)
    mapping = baseline(graph, required_bytes(graph))
    assert "cp-sat layout" in mapping.method
    assert simulate(graph, mapping.to_dict(graph)).valid


@pytest.mark.parametrize("seed", range(8))
def test_cpsat_equals_brute_force_on_unit_graphs(seed):
    graph = random_dag(seed, n=6)
    capacity = required_bytes(graph)
    result, mapping = report(solve_mapping(graph, capacity, time_limit=30))
    assert result.status == "optimal"
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert replay.offchip_bytes == result.objective == brute_force_traffic(graph, capacity)


@pytest.mark.parametrize("seed", range(4))
def test_more_reloads_do_not_change_the_optimum(seed):
    graph = random_dag(seed + 100, n=6, unit=False)
    capacity = required_bytes(graph)
    two, _ = report(solve_mapping(graph, capacity, time_limit=30, max_reloads=2))
    three, _ = report(solve_mapping(graph, capacity, time_limit=30, max_reloads=3))
    assert two.status == three.status == "optimal" and two.objective == three.objective


def test_simulator_rejects_broken_mappings():
    graph = chain_with_skip()
    _, mapping = report(solve_mapping(graph, 12, time_limit=10))
    good = mapping.to_dict(graph)
    assert simulate(graph, good).valid
    overlap = json.loads(json.dumps(good))
    step = next(s for s in overlap["steps"] if len(s["resident"]) >= 2)
    first, second = list(step["resident"])[:2]
    step["resident"][second] = step["resident"][first]
    assert any("rule 3" in e for e in simulate(graph, overlap).errors)
    dropped = json.loads(json.dumps(good))
    del dropped["steps"][2]["resident"]["a"]  # 'a' is needed by d at step 3
    assert not simulate(graph, dropped).valid
    lying = dict(good, offchip_bytes=good["offchip_bytes"] + 1)
    assert any("rule 9" in e for e in simulate(graph, lying).errors)


def test_spilling_when_the_skip_does_not_fit():
    graph = chain_with_skip(sizes=(4, 8, 8, 4))  # M_R = 16: b and c fill it, so a must leave
    result, mapping = report(solve_mapping(graph, 16, time_limit=10))
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid and result.status == "optimal"
    assert result.objective == replay.offchip_bytes == 8  # spill a, then retrieve it
    result, mapping = report(solve_mapping(graph, 20, time_limit=10))
    assert simulate(graph, mapping.to_dict(graph)).valid and result.objective == 0


def test_budget_below_required_is_refused():
    graph = chain_with_skip()
    with pytest.raises(MappingError, match="below M_R = 12"):
        MappingProblem(graph, 11)


@needs_shared
@pytest.mark.parametrize("name", ["ResNet50_256_224x224x3_test", "VGG16_256_224x224x3_train"])
def test_checkmate_graphs_at_required_and_peak(name):
    graph = load_graph(SHARED / "checkmate" / f"{name}.json")
    limits = budgets(graph, time_limit=20)
    for capacity in (limits.required, limits.peak):
        result = solve(MappingProblem(graph, capacity, time_limit=30, budgets=limits))
        assert result.replay.valid, result.replay.errors
        for mapping in result.baselines.values():
            assert simulate(graph, mapping.to_dict(graph)).valid
        assert result.offchip_bytes <= min(result.baseline_bytes().values())
        if capacity == limits.peak:
            assert result.offchip_bytes == 0


def test_cli_map_json(tmp_path):
    from designer.cli import app
    graph = random_dag(3, n=7, unit=False)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph.to_dict()))
    out = tmp_path / "mapping.json"
    result = CliRunner().invoke(app, ["map", str(path), "--scratchpad", "M_R", "--time-limit", "10", "--out", str(out),
                                      "--plot", str(tmp_path / "layout.png"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["valid"] and payload["scratchpad_bytes"] == payload["budgets"]["M_R"]
    assert simulate(graph, json.loads(out.read_text())).valid
    assert (tmp_path / "layout.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["map", str(path), "--scratchpad", "1"])
    assert bad.exit_code == 2 and "below M_R" in bad.output


@pytest.mark.parametrize("seed", range(10))
def test_divide_and_conquer_is_valid_on_random_graphs(seed):
    from designer.mapping.strategies.divide import divide_and_conquer
    graph = random_dag(seed + 200, n=14, unit=False)
    mapping = divide_and_conquer(graph, required_bytes(graph), window=4, seconds_per_window=3).mapping
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid, replay.errors


def test_divide_and_conquer_backs_out_of_a_dead_end():
    """On this graph a committed window leaves carried tensors where the next window's operands
    cannot fit; the last CP-SAT commit is undone and the baseline used there instead."""
    from designer.mapping.strategies.divide import divide_and_conquer
    graph = random_dag(200, n=14, unit=False)
    mapping = divide_and_conquer(graph, required_bytes(graph), window=4, seconds_per_window=3).mapping
    assert "0 backtracks" not in mapping.method
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert mapping.order == [step.op for step in mapping.steps] and len(mapping.steps) == len(graph.operators)


def test_divide_mode_through_the_problem():
    graph = random_dag(7, n=16, unit=False)
    result = solve(MappingProblem(graph, required_bytes(graph), strategy="divide", window=5, seconds_per_window=3))
    assert result.replay.valid and result.solve.status in ("feasible", "optimal")
    # divide mode proves no bound of its own; the forced-liveness bound holds in every mode
    assert result.solve.bound is not None and result.solve.bound <= result.solve.objective
    assert "forced-liveness" in result.solve.message or result.solve.status == "optimal"


# COSMA's ILP (pyomo + HiGHS) against brute force, CP-SAT and the simulator

def spilling_cases(count: int, unit: bool):
    """(graph, capacity) pairs that must spill: random DAGs at budgets between M_R and M_P."""
    cases, seed = [], 0
    while len(cases) < count:
        graph = random_dag(seed, n=8, unit=unit)
        limits = budgets(graph, time_limit=5)
        cases += [(graph, capacity) for capacity in range(limits.required, limits.peak)]
        seed += 1
    return cases[:count]


@pytest.mark.parametrize("index", range(5))
def test_ilp_equals_brute_force_when_spilling(index):
    from designer.mapping.strategies.ilp import solve_ilp
    graph, capacity = spilling_cases(5, unit=True)[index]
    result, mapping = report(solve_ilp(graph, capacity, time_limit=30))
    assert result.status == "optimal"
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert replay.offchip_bytes == result.objective == brute_force_traffic(graph, capacity) > 0


@pytest.mark.parametrize("index", range(5))
def test_ilp_equals_cpsat_on_sized_tensors(index):
    from designer.mapping.strategies.ilp import solve_ilp
    graph, capacity = spilling_cases(5, unit=False)[index]
    ilp, mapping = report(solve_ilp(graph, capacity, time_limit=30))
    cpsat, _ = report(solve_mapping(graph, capacity, time_limit=30, max_reloads=3))
    assert ilp.status == cpsat.status == "optimal" and ilp.objective == cpsat.objective
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid and replay.offchip_bytes == ilp.objective


def test_ilp_fixed_schedule_and_through_the_problem():
    graph, capacity = spilling_cases(1, unit=False)[0]
    order = graph.topological_order()
    ilp = solve(MappingProblem(graph, capacity, "ilp", order="given", time_limit=30))
    cpsat = solve(MappingProblem(graph, capacity, order="given", time_limit=30))
    assert ilp.mapping.order == order and ilp.replay.valid
    assert ilp.solve.status == "optimal" and ilp.offchip_bytes == cpsat.offchip_bytes
    joint = solve(MappingProblem(graph, capacity, "ilp", time_limit=30))
    assert joint.replay.valid and joint.offchip_bytes <= ilp.offchip_bytes
    with pytest.raises(MappingError, match="strategy: must be one of cpsat, ilp"):
        MappingProblem(graph, capacity, "gurobi")


def test_generated_graphs_map_validly():
    from designer.mapping.sources.generators import cell_network, transformer_encoder
    cells = cell_network(cells=3, nodes=2, channels=4, resolution=8, seed=1)
    encoder = transformer_encoder(layers=1, tokens=8, dim=8, heads=2)
    assert len(encoder.operators) == 14 and encoder.tensors["layer0/scores"].bytes == 2 * 8 * 8
    assert cells.tensors["cell2/concat"].producer == "cell2/concat"
    assert cell_network(seed=1).to_dict() == cell_network(seed=1).to_dict()  # seeded
    for graph in (cells, encoder):
        limits = budgets(graph, time_limit=10)
        result = solve(MappingProblem(graph, limits.required, time_limit=10, budgets=limits))
        assert result.replay.valid, result.replay.errors
        for mapping in result.baselines.values():
            assert simulate(graph, mapping.to_dict(graph)).valid
    with pytest.raises(ValueError, match="divisible"):
        transformer_encoder(dim=10, heads=4)


def test_a_baseline_hint_is_a_complete_starting_mapping():
    """A whole baseline mapping as the hint: CP-SAT starts from it (here on a 112-operator cell
    network, where from the schedule alone it found nothing in 2 s; with the hint it had the
    baseline by 2 s, so 10 s leaves a slow machine room) and never returns anything worse."""
    from designer.mapping.sources.generators import cell_network
    graph = cell_network(cells=8)
    capacity = required_bytes(graph)
    start = baseline(graph, capacity, greedy_min_peak_order(graph))
    result, mapping = report(solve_mapping(graph, capacity, time_limit=10, hint=start))
    assert mapping is not None and result.objective <= start.offchip_bytes(graph)
    replay = simulate(graph, mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert replay.offchip_bytes == result.objective


def inception_like(seed: int) -> TensorGraph:
    """An input ``x`` read by four branches (one to three operators each, with a weight) and by
    the head: schedules put its readers on consecutive steps."""
    rng = random.Random(seed)
    operators, tensors, ends = [], [Tensor("x", 3072, None)], []
    for b in range(4):
        previous = "x"
        tensors.append(Tensor(f"w{b}", 512, None))
        for d in range(rng.randint(1, 3)):
            name = f"b{b}_{d}"
            tensors.append(Tensor(f"{name}_out", rng.choice([1024, 2048, 3072, 4096]), name))
            operators.append(Operator(name, [previous] + ([f"w{b}"] if d == 0 else []), [f"{name}_out"]))
            previous = f"{name}_out"
        ends.append(previous)
    tensors += [Tensor("cat", 8192, "concat"), Tensor("y", 1024, "head")]
    operators += [Operator("concat", ends, ["cat"]), Operator("head", ["cat", "x"], ["y"])]
    return TensorGraph(operators, tensors, f"inception-{seed}")


def test_the_simulator_rejects_an_input_that_moves_while_resident():
    graph = inception_like(0)
    firsts = [f"b{b}_0" for b in range(4)]  # x's four readers first: x resident on steps 0-3
    order = firsts + [op for op in graph.topological_order() if op not in firsts]
    mapping = plan(graph, order, 10 ** 6).to_dict(graph)
    assert all("x" in mapping["steps"][t]["resident"] for t in range(4)) and simulate(graph, mapping).valid
    t = 2
    mapping["steps"][t]["resident"]["x"] = 10 ** 6 - 3072  # the same bytes, at the top: free space at 1 MB
    replay = simulate(graph, mapping)
    assert not replay.valid and any(e.startswith(f"rule 6: step {t}: x moved") for e in replay.errors)


@pytest.mark.parametrize("strategy", ["baseline", "cpsat", "ilp", "divide", "keep"])
def test_inputs_keep_their_address_on_consecutive_steps_in_every_strategy(strategy):
    """Issue 22: an inception-like graph at M_R had x move from 3,072 to 4,096 while resident."""
    from designer.mapping.strategies.baselines import solve_baseline
    from designer.mapping.strategies.divide import divide_and_conquer
    from designer.mapping.strategies.ilp import solve_ilp
    from designer.mapping.strategies.keep import keep_plan
    functions = {"baseline": solve_baseline, "cpsat": solve_mapping, "ilp": solve_ilp, "divide": divide_and_conquer,
                 "keep": keep_plan}
    options = {"window": 4, "seconds_per_window": 1} if strategy == "divide" else {}
    for seed in range(4):
        graph = inception_like(seed)
        limits = budgets(graph, time_limit=5)
        for scratchpad in (limits.required, limits.halfway):
            outcome = functions[strategy](graph, scratchpad, 5, **options)
            if outcome.mapping is not None:
                replay = simulate(graph, outcome.mapping.to_dict(graph, outcome.result))
                assert replay.valid, (seed, scratchpad, replay.errors[:2])


def test_a_mapping_from_a_smaller_scratchpad_is_a_start_so_traffic_never_rises():
    """Issue 22: a larger budget gave a worse answer than a smaller one's mapping, valid there."""
    graph = random_dag(11, n=14, unit=False)
    limits = budgets(graph, time_limit=5)
    small = solve(MappingProblem(graph, limits.required, time_limit=5, budgets=limits))
    for scratchpad in (limits.halfway, limits.peak):
        larger = solve(MappingProblem(graph, scratchpad, time_limit=1, lower_bound=False,
                                start=small.mapping, budgets=limits))
        assert larger.replay.valid and larger.offchip_bytes <= small.offchip_bytes
    broken = Mapping(limits.required, small.mapping.steps[:-1])
    with pytest.raises(MappingError, match="start: not a valid mapping"):
        MappingProblem(graph, limits.peak, start=broken)
