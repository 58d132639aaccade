"""The forced-liveness bound, the keep-or-spill plan and its offline layout: against brute
force on small graphs, and every mapping they give replayed by the simulator."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from designer.mapping.strategies.baselines import PlacementError, baseline, greedy_min_peak_order, required_bytes
from designer.mapping.strategies.cpsat import solve_mapping
from designer.mapping.strategies.keep import keep_plan, solve_keep
from designer.mapping.strategies.layout import layout
from designer.mapping.bounds.liveness import live_across, liveness_bound
from designer.mapping.strategies.windows import solve_order, window_search
from designer.mapping.problem import MappingProblem, budgets
from designer.mapping.stages import solve
from designer.mapping.core.simulate import simulate
from tests.test_mapping import brute_force_traffic, chain_with_skip, random_dag, spilling_cases


def placed_belady(graph, limits, order):
    """The smallest of M_R and M_H at which ``order``'s Belady plan exists, and the plan: some
    random graphs' order has no placement at M_R at all (CP-SAT proves it; seed 6000 at 30
    operators), and a test that starts from a plan needs one. (None, None) when neither has one."""
    for capacity in (limits.required, limits.halfway):
        try:
            return capacity, baseline(graph, capacity, order, "belady")
        except PlacementError as error:
            assert "proves that no mapping" in str(error)
    return None, None


@pytest.mark.parametrize("index", range(8))
def test_liveness_bound_is_at_most_the_brute_force_optimum(index):
    graph, capacity = spilling_cases(8, unit=True)[index]
    optimum = brute_force_traffic(graph, capacity)
    bound = liveness_bound(graph, capacity, 10).result
    assert bound.status == "optimal" and bound.bound <= optimum


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 9))
def test_liveness_bound_is_at_most_the_proven_optimum_with_sizes(seed, n):
    graph = random_dag(seed, n=n, unit=False)
    limits = budgets(graph, time_limit=5)
    for capacity in {limits.required, limits.halfway}:
        optimum = solve_mapping(graph, capacity, 10).result
        bound = liveness_bound(graph, capacity, 10).result
        if optimum.status == "optimal":
            assert bound.bound <= optimum.objective + 1e-6  # CP-SAT reports 1.9999999999999996 for 2


def test_live_across_follows_the_dependencies():
    graph = chain_with_skip()  # a -> b -> c -> d, a -> d: a (read by b and d) is live across c
    across = live_across(graph)
    # in the second stretch of the chain a -> b -> d (the first, between a and b, is empty)
    assert across["c"] == [("a", 2)]
    assert across["a"] == across["b"] == across["d"] == []


@pytest.mark.parametrize("index", range(8))
def test_keep_optimum_equals_brute_force_for_its_order(index):
    """Unit sizes: the keep-or-spill MILP is exact for the order, and its plan lays out at that cost."""
    graph, capacity = spilling_cases(8, unit=True)[index]
    for order in (graph.topological_order(), greedy_min_peak_order(graph)):
        result, _ = solve_keep(graph, order, capacity, 10)
        assert result.status == "optimal" and result.objective == brute_force_traffic(graph, capacity, [order])
        outcome = keep_plan(graph, capacity, 10, order=order)
        replay = simulate(graph, outcome.mapping.to_dict(graph))
        assert replay.valid, replay.errors
        assert outcome.mapping.order == order and replay.offchip_bytes == result.objective
        assert outcome.result.bound == result.objective and outcome.result.status == "optimal"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 10))
def test_keep_plans_and_layouts_replay_valid_with_sizes(seed, n):
    graph = random_dag(seed, n=n, unit=False)
    limits = budgets(graph, time_limit=5)
    for capacity in {limits.required, limits.halfway}:
        order = limits.min_peak_order
        result, kept = solve_keep(graph, order, capacity, 10)
        # no mapping of this order moves less than the plan, the Belady baseline included (where it has one)
        at, belady = placed_belady(graph, limits, order)
        if at == capacity:
            assert result.bound <= belady.offchip_bytes(graph)
        offline = layout(graph, order, kept, capacity)
        if offline is not None:
            replay = simulate(graph, offline.to_dict(graph))
            assert replay.valid, replay.errors
            assert replay.offchip_bytes >= result.bound
        orders = [graph.topological_order(), order]
        outcome = keep_plan(graph, capacity, 10, orders=orders)
        if outcome.mapping is None:  # only when CP-SAT proves neither order has any placement here
            assert "could not be laid out" in outcome.result.message
            for each in orders:
                with pytest.raises(PlacementError, match="proves that no mapping"):
                    baseline(graph, capacity, each, "belady")
            continue
        replay = simulate(graph, outcome.mapping.to_dict(graph))
        assert replay.valid, replay.errors
        assert outcome.result.bound is None  # other orders were not searched: no bound


def test_keep_refuses_a_scratchpad_below_the_operands():
    graph = random_dag(3, n=6, unit=False)
    outcome = keep_plan(graph, required_bytes(graph) - 1, 5)
    assert outcome.mapping is None and outcome.result.status == "infeasible"
    assert "below step" in outcome.result.message


@pytest.mark.parametrize("strategy, order", [("cpsat", "free"), ("cpsat", "given"), ("divide", "free")])
def test_the_problem_reports_the_best_of_plans_and_baselines(strategy, order):
    graph = random_dag(11, n=14, unit=False)
    limits = budgets(graph, time_limit=5)
    result = solve(MappingProblem(graph, limits.halfway, strategy, order=order, time_limit=10, window=6,
                            seconds_per_window=2, budgets=limits))
    assert result.replay.valid, result.replay.errors
    assert result.offchip_bytes <= min(result.baseline_bytes().values())
    assert result.solve.bound is not None and result.solve.bound <= result.offchip_bytes


@pytest.mark.parametrize("index", range(6))
def test_order_model_equals_brute_force_for_its_order(index):
    """Unit sizes (no fragmentation): the per-gap CP-SAT model of one order is exact for it."""
    graph, capacity = spilling_cases(6, unit=True)[index]
    order = greedy_min_peak_order(graph)
    outcome = solve_order(graph, order, capacity, 10)
    replay = simulate(graph, outcome.mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert outcome.result.status == "optimal"
    assert replay.offchip_bytes == outcome.result.objective == brute_force_traffic(graph, capacity, [order])


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 12))
def test_order_model_is_never_worse_than_its_hint_and_replays_valid(seed, n):
    graph = random_dag(seed, n=n, unit=False)
    limits = budgets(graph, time_limit=5)
    order = limits.min_peak_order
    capacity, hint = placed_belady(graph, limits, order)
    assume(hint is not None)
    outcome = solve_order(graph, order, capacity, 10, hint=hint)
    replay = simulate(graph, outcome.mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert replay.offchip_bytes <= hint.offchip_bytes(graph)
    if outcome.result.status == "optimal":  # nothing cheaper in this order: not even with a neighbourhood
        assert outcome.result.bound == replay.offchip_bytes
    for reach in (False, True):
        part = solve_order(graph, order, limits.required, 10, hint=hint, free=range(2, 6), reach=reach)
        replay = simulate(graph, part.mapping.to_dict(graph))
        assert replay.valid, replay.errors
        assert replay.offchip_bytes <= hint.offchip_bytes(graph)
        if not reach:  # only what lies wholly inside steps 2-5 may change (a hint's partial stay over
            for t in [0, 1] + list(range(6, n)):  # a gap, which saves nothing, becomes a drop)
                assert part.mapping.steps[t].resident.items() <= hint.steps[t].resident.items()


def test_window_search_improves_a_poor_start_and_replays_valid():
    graph = random_dag(4, n=30, unit=False)
    limits = budgets(graph, time_limit=5)
    start = baseline(graph, limits.required, graph.topological_order(), "greedy")
    outcome = window_search(graph, limits.required, 5, incumbent=start, window=8)
    replay = simulate(graph, outcome.mapping.to_dict(graph))
    assert replay.valid, replay.errors
    assert outcome.mapping.order == start.order  # the order is kept
    assert replay.offchip_bytes == outcome.result.objective <= start.offchip_bytes(graph)
    assert outcome.result.bound is None


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_every_neighbourhood_replays_valid(seed):
    """Every window position, both kinds: a tensor made inside a window and kept past its end
    must keep the address the rest of the mapping has it at (a bug once moved it)."""
    graph = random_dag(seed, n=30, unit=False)
    limits = budgets(graph, time_limit=5)
    capacity, best = placed_belady(graph, limits, limits.min_peak_order)
    assume(best is not None)
    for start in range(0, 30, 3):
        for reach in (False, True):
            part = solve_order(graph, best.order, capacity, 2, hint=best, free=range(start, start + 6),
                               reach=reach)
            replay = simulate(graph, part.mapping.to_dict(graph))
            assert replay.valid, (start, reach, replay.errors)
            if replay.offchip_bytes < best.offchip_bytes(graph):
                best = part.mapping


def test_the_solve_reports_each_stage_as_it_ends():
    """Issue 23: `map` shows its phase and the best traffic so far; the events come from the library."""
    graph = random_dag(11, n=14, unit=False)
    events = []
    result = solve(MappingProblem(graph, "M_R", time_limit=5), progress=events.append)
    stages = [e["stage"] for e in events]
    assert stages[0] == "baselines" and "forced-liveness bound" in stages
    bests = [e["best"] for e in events if e["best"] is not None]
    assert bests == sorted(bests, reverse=True) and bests[-1] >= result.solve.objective
    assert all(e["bound"] is None or e["bound"] <= result.solve.objective for e in events)


def test_the_layout_plot_names_the_largest_tensors_and_has_a_legend(tmp_path, monkeypatch):
    """Issue 23: named tensors and a legend for spills and reloads, not 20 colours for 290 tensors."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from designer.mapping.core.plot import NAMED, plot_layout
    graph = random_dag(11, n=14, unit=False)
    result = solve(MappingProblem(graph, "M_R", time_limit=3))
    axes = []
    original = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: (lambda fa: (axes.append(fa[1]), fa)[1])(original(*a, **k)))
    plot_layout(graph, result.mapping, tmp_path / "layout.png")
    labels = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert "spill (written to host)" in labels and "reload (read back)" in labels
    assert sum(label.endswith(" B)") for label in labels) == min(NAMED, len(graph.tensors))
    assert (tmp_path / "layout.png").stat().st_size > 0


def graph_order_belady(graph, scratchpad_bytes, time_limit, *, objective, threads):
    """A strategy written as a user would: the Belady baseline on the graph's own order (the
    function is its first file; the registration below, its second)."""
    from designer.mapping.core.io import MappingOutcome
    from solvers.result import SolveResult, Status
    order = graph.topological_order()
    mapping = baseline(graph, scratchpad_bytes, order, "belady", objective=objective)
    cost = objective.of_steps(graph, mapping.steps)
    return MappingOutcome(mapping, SolveResult(Status.FEASIBLE, objective=cost, seconds=0.0, solver="reverse-belady",
                                               message="reverse-belady: the graph's order"))


def test_a_strategy_registered_from_outside_runs_through_the_front_door():
    """Issue 36: a new strategy is its function and one registry entry; the search names none."""
    from designer.mapping.strategies import STRATEGIES, Strategy, register_strategy
    entry = Strategy("reverse-belady", "Belady on the graph's order (a test strategy)", given_order=True, dram=True,
                     function=graph_order_belady)
    register_strategy(entry)
    try:
        with pytest.raises(ValueError, match="registered already"):
            register_strategy(entry)
        graph = random_dag(3, n=12, unit=False)  # at M_R its baselines move 22 bytes; no bound is asked for,
        # so the gap stays open and the search hands the strategy its turn
        result = solve(MappingProblem(graph, "M_R", strategy="reverse-belady", time_limit=5, lower_bound=False))
        assert result.solver_result.solver == "reverse-belady"
        assert result.replay.valid and result.problem.strategy == "reverse-belady"
    finally:
        del STRATEGIES["reverse-belady"]


def test_reading_a_mapping_file_and_the_simulator_need_no_solver(tmp_path):
    """Issue 36: the core imports neither OR-Tools nor pyomo; a mapping file is read and replayed
    in a process where both are missing."""
    import json
    import subprocess
    import sys
    graph = random_dag(3, n=10, unit=False)
    result = solve(MappingProblem(graph, "M_H", time_limit=5))
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(result.mapping.to_dict(graph, result.solve)))
    code = f"""
import sys, json
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ortools', 'pyomo', 'highspy', 'torch'):
            raise ImportError(name + ' is not installed here')
sys.meta_path.insert(0, Missing())
import designer.mapping
from designer.mapping import TensorGraph
from designer.mapping.core.simulate import simulate
data = json.load(open({str(path)!r}))
replay = simulate(TensorGraph.from_dict(data), data)
print(replay.valid, replay.offchip_bytes)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str(result.offchip_bytes)]
