r"""The mapping problem as a constraint program (OR-Tools CP-SAT).

Variables and constraints (sizes and the scratchpad divided by the GCD of all of them):

(C1) a position pos_o per operator, all different, pos_p + 1 <= pos_c for every edge, and
     pos_o within [ancestors(o), n - 1 - descendants(o)];
(C2) per produced tensor T (producer p, consumers C): a first residency interval
     [pos_p, e_0) at address a_0, and up to R optional reload intervals [s_r, e_r) at
     addresses a_r (present iff x_r; x_{r+1} => x_r), with s_1 >= e_0 + 1 and
     s_{r+1} >= e_r + 1 (a tensor absent for a step may come back at another address; one
     resident in consecutive steps keeps its address);
(C3) coverage: every consumer c lies in one interval: b_{c,0} => pos_c < e_0,
     b_{c,r} => x_r and s_r <= pos_c < e_r, sum_r b_{c,r} >= 1;
(C4) a tensor with no producer (input, weight) is read from host for each use: a one-step
     interval [pos_c, pos_c + 1) at its own address per consumer, at no counted cost;
(C5) NoOverlap2D over the (time, address) rectangles of all intervals, addresses within
     [0, M - size]; a redundant Cumulative over time with capacity M;
(C6) objective: sum_T bytes_T (x_1 + sum_r x_r): one spill (the first time a tensor leaves)
     and one retrieval per reload.

R (``max_reloads``) limits the reloads per tensor; tests check that raising it does not change
the optimum on small graphs. With ``addresses=False`` the model drops (C5)'s rectangles and
keeps the Cumulative: the minimum-peak and relaxed problems.
"""

from __future__ import annotations

import math
import time
from functools import reduce

import networkx as nx
from ortools.sat.python import cp_model

from designer.mapping.graph import TensorGraph
from designer.mapping.io import Mapping, Step
from solvers.result import SolveResult, Status

STATUS = {cp_model.OPTIMAL: Status.OPTIMAL, cp_model.FEASIBLE: Status.FEASIBLE,
          cp_model.INFEASIBLE: Status.INFEASIBLE, cp_model.UNKNOWN: Status.NO_SOLUTION,
          cp_model.MODEL_INVALID: Status.ERROR}


def position_windows(graph: TensorGraph) -> dict[str, tuple[int, int]]:
    n = len(graph.operators)
    return {op: (len(nx.ancestors(graph.dag, op)), n - 1 - len(nx.descendants(graph.dag, op)))
            for op in graph.operators}


def _solve(model: cp_model.CpModel, time_limit: float, threads: int, seed: int) -> tuple[cp_model.CpSolver, int]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = threads
    solver.parameters.random_seed = seed
    return solver, solver.Solve(model)


def min_peak(graph: TensorGraph, time_limit: float = 30.0, threads: int = 1, seed: int = 0) \
        -> tuple[SolveResult, list[str] | None]:
    """M_P: the least peak of live bytes over schedules without spilling (no addresses);
    returns the result (objective = best peak found, bound = proven lower bound) and its order."""
    start = time.perf_counter()
    n = len(graph.operators)
    model = cp_model.CpModel()
    windows = position_windows(graph)
    pos = {op: model.NewIntVar(lo, hi, f"pos[{op}]") for op, (lo, hi) in windows.items()}
    model.AddAllDifferent(list(pos.values()))
    for a, b in graph.dag.edges:
        model.Add(pos[a] + 1 <= pos[b])
    intervals, demands = [], []
    for name, tensor in graph.tensors.items():
        consumers = graph.consumers[name]
        if tensor.producer is None:
            for c in consumers:
                intervals.append(model.NewIntervalVar(pos[c], 1, pos[c] + 1, f"use[{name},{c}]"))
                demands.append(tensor.bytes)
            continue
        end = model.NewIntVar(1, n, f"end[{name}]")
        model.AddMaxEquality(end, [pos[tensor.producer] + 1] + [pos[c] + 1 for c in consumers])
        size = model.NewIntVar(1, n, f"len[{name}]")
        intervals.append(model.NewIntervalVar(pos[tensor.producer], size, end, f"live[{name}]"))
        demands.append(tensor.bytes)
    lower = max(graph.operand_bytes(op) for op in graph.operators)
    peak = model.NewIntVar(lower, sum(t.bytes for t in graph.tensors.values()) * max(1, n), "peak")
    model.AddCumulative(intervals, demands, peak)
    model.Minimize(peak)
    solver, code = _solve(model, time_limit, threads, seed)
    status = STATUS.get(code, Status.ERROR)
    order = None
    objective = bound = None
    if status.has_solution:
        order = sorted(graph.operators, key=lambda op: solver.Value(pos[op]))
        objective, bound = solver.ObjectiveValue(), solver.BestObjectiveBound()
    gap = None if objective is None else (objective - bound) / max(objective, 1e-9)
    return SolveResult(status, objective, bound, gap, time.perf_counter() - start, solution=order, solver="cp-sat",
                       message=solver.StatusName(code)), order


def solve_mapping(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, max_reloads: int = 2,
                  threads: int = 1, seed: int = 0, hint: Mapping | None = None,
                  order: list[str] | None = None, known_bound: float | None = None,
                  entering: dict[str, int | None] | None = None, hosted: set[str] | frozenset[str] = frozenset(),
                  leaving: set[str] | frozenset[str] = frozenset()) -> tuple[SolveResult, Mapping | None]:
    """Minimise off-chip traffic (spilled + retrieved bytes); ``order`` fixes the schedule
    (the paper's fixed-schedule mode); ``hint`` warm-starts from a mapping (a baseline);
    ``known_bound``: a proven lower bound on the traffic (bytes), e.g. the address-free MILP's,
    added as a constraint so CP-SAT can stop once it reaches it.

    Boundary conditions, for solving one window of a larger graph (:mod:`designer.mapping.divide`):
    ``entering`` maps tensors produced before the window (producer-less in ``graph``) to their
    address if resident just before it, or None if only in host; ``hosted`` are tensors with a
    host copy already; ``leaving`` tensors are needed after the window, so each ends resident
    at the last step or with a host copy."""
    start = time.perf_counter()
    entering = entering or {}
    n = len(graph.operators)
    sizes = [t.bytes for t in graph.tensors.values()]
    addresses = [a for a in entering.values() if a is not None]
    unit = reduce(math.gcd, sizes + [scratchpad_bytes] + addresses)
    capacity = scratchpad_bytes // unit
    model = cp_model.CpModel()
    windows = position_windows(graph)
    if order is not None:
        windows = {op: (i, i) for i, op in enumerate(order)}
    pos = {op: model.NewIntVar(lo, hi, f"pos[{op}]") for op, (lo, hi) in windows.items()}
    model.AddAllDifferent(list(pos.values()))
    for a, b in graph.dag.edges:
        model.Add(pos[a] + 1 <= pos[b])

    # (C2)-(C4) intervals; records[name]: (presence or None, start, end, address, consumer or None)
    x_intervals, y_intervals, demands, costs = [], [], [], []
    records: dict[str, list] = {}
    spills: dict[str, cp_model.IntVar] = {}
    lengths: dict[tuple[str, int], cp_model.IntVar] = {}  # (tensor, interval index) -> length, for hints
    covers: dict[tuple[str, int, str], cp_model.IntVar] = {}  # (tensor, interval index, consumer) -> b
    for name, tensor in graph.tensors.items():
        size = tensor.bytes // unit
        consumers = graph.consumers[name]
        records[name] = []
        if size > capacity:
            raise ValueError(f"tensor {name!r} ({tensor.bytes} bytes) is larger than the scratchpad")
        if tensor.producer is None and name not in entering:  # (C4) inputs and weights: free per use
            for c in consumers:
                address = model.NewIntVar(0, capacity - size, f"a[{name},{c}]")
                x_intervals.append(model.NewFixedSizeIntervalVar(pos[c], 1, f"t[{name},{c}]"))
                y_intervals.append(model.NewFixedSizeIntervalVar(address, size, f"m[{name},{c}]"))
                demands.append(size)
                records[name].append((None, pos[c], pos[c] + 1, address, c))
            continue
        # the first residency: from the producer's step, or from the window's start at the address it has
        first_present = None
        if tensor.producer is not None:
            begin = pos[tensor.producer]
            e0 = model.NewIntVar(windows[tensor.producer][0] + 1, n, f"e0[{name}]")
            length0 = model.NewIntVar(1, n, f"len0[{name}]")
            a0 = model.NewIntVar(0, capacity - size, f"a0[{name}]")
            model.Add(length0 == e0 - begin)
            lengths[name, 0] = length0
            x_intervals.append(model.NewIntervalVar(begin, length0, e0, f"t0[{name}]"))
            y_intervals.append(model.NewFixedSizeIntervalVar(a0, size, f"m0[{name}]"))
            records[name].append((None, begin, e0, a0, None))
            demands.append(size)
            drop = e0
        elif entering[name] is not None:
            first_present = model.NewBoolVar(f"p0[{name}]")
            e0 = model.NewIntVar(1, n, f"e0[{name}]")
            address = entering[name] // unit
            x_intervals.append(model.NewOptionalIntervalVar(0, e0, e0, first_present, f"t0[{name}]"))
            y_intervals.append(model.NewOptionalFixedSizeIntervalVar(address, size, first_present, f"m0[{name}]"))
            records[name].append((first_present, 0, e0, model.NewConstant(address), None))
            demands.append(size)
            drop = model.NewIntVar(0, n, f"drop[{name}]")  # the step it first leaves: e0, or 0
            model.Add(drop == e0).OnlyEnforceIf(first_present)
            model.Add(drop == 0).OnlyEnforceIf(first_present.Not())
        else:  # only in host when the window starts
            e0 = drop = None
        if tensor.producer is not None and not consumers and name not in leaving:
            model.Add(e0 == begin + 1)
            continue
        already_hosted = name in hosted or (tensor.producer is None and entering.get(name) is None)
        if already_hosted:
            spill = model.NewConstant(1)
        else:
            spill = spills[name] = model.NewBoolVar(f"y[{name}]")
            costs.append((size, spill))
        cover = {c: [] for c in consumers}
        end_cover = []
        if e0 is not None:
            for c in consumers:
                b = covers[name, 0, c] = model.NewBoolVar(f"b0[{name},{c}]")
                model.Add(pos[c] <= e0 - 1).OnlyEnforceIf(b)
                if first_present is not None:
                    model.AddImplication(b, first_present)
                cover[c].append(b)
            if name in leaving:
                stays = model.NewBoolVar(f"end0[{name}]")
                model.Add(e0 == n).OnlyEnforceIf(stays)
                if first_present is not None:
                    model.AddImplication(stays, first_present)
                end_cover.append(stays)
        previous_end, previous_present = drop, None
        for r in range(1, max_reloads + 1):
            present = model.NewBoolVar(f"x{r}[{name}]")
            model.AddImplication(present, previous_present if previous_present is not None else spill)
            s_r = model.NewIntVar(0, n - 1, f"s{r}[{name}]")
            e_r = model.NewIntVar(1, n, f"e{r}[{name}]")
            length = model.NewIntVar(1, n, f"len{r}[{name}]")
            model.Add(length == e_r - s_r)
            lengths[name, r] = length
            if previous_end is not None:  # absent for a step before coming back (rule 6)
                model.Add(s_r >= previous_end + 1).OnlyEnforceIf(present)
            a_r = model.NewIntVar(0, capacity - size, f"a{r}[{name}]")
            x_intervals.append(model.NewOptionalIntervalVar(s_r, length, e_r, present, f"t{r}[{name}]"))
            y_intervals.append(model.NewOptionalFixedSizeIntervalVar(a_r, size, present, f"m{r}[{name}]"))
            demands.append(size)
            for c in consumers:
                b = covers[name, r, c] = model.NewBoolVar(f"b{r}[{name},{c}]")
                model.AddImplication(b, present)
                model.Add(s_r <= pos[c]).OnlyEnforceIf(b)
                model.Add(pos[c] <= e_r - 1).OnlyEnforceIf(b)
                cover[c].append(b)
            if name in leaving:
                stays = model.NewBoolVar(f"end{r}[{name}]")
                model.AddImplication(stays, present)
                model.Add(e_r == n).OnlyEnforceIf(stays)
                end_cover.append(stays)
            costs.append((size, present))
            records[name].append((present, s_r, e_r, a_r, None))
            previous_end, previous_present = e_r, present
        for c in consumers:
            model.AddBoolOr(cover[c])
        if name in leaving:  # resident at the last step, or a host copy for later
            model.AddBoolOr(end_cover + [spill])
        if first_present is not None and not already_hosted:
            # leaving at the window's start while still needed needs a host copy
            model.AddImplication(first_present.Not(), spill)

    # (C5) space: rectangles, and the redundant cumulative
    model.AddNoOverlap2D(x_intervals, y_intervals)
    model.AddCumulative(x_intervals, demands, capacity)
    # (C6) objective: one spill per tensor that ever leaves while needed, one retrieval per reload
    objective = sum(size * literal for size, literal in costs)
    model.Minimize(objective)
    if known_bound is not None and costs:
        model.Add(objective >= math.ceil(known_bound / unit - 1e-9))
    if hint is not None:
        for t, op in enumerate(hint.order):  # the schedule of a known mapping; CP-SAT completes the rest
            model.AddHint(pos[op], t)
        if any(step.resident for step in hint.steps):
            _hint_residency(model, graph, hint, records, spills, lengths, covers, unit, entering)

    solver, code = _solve(model, time_limit, threads, seed)
    status = STATUS.get(code, Status.ERROR)
    seconds = time.perf_counter() - start
    if not status.has_solution:
        return SolveResult(status, seconds=seconds, solver="cp-sat", message=solver.StatusName(code)), None
    mapping = extract(graph, solver, pos, records, spills, unit, scratchpad_bytes, entering)
    value, bound = solver.ObjectiveValue() * unit, solver.BestObjectiveBound() * unit
    gap = 0.0 if value == bound else (value - bound) / max(value, 1e-9)
    mapping.status, mapping.bound, mapping.gap, mapping.seconds = str(status), bound, gap, seconds
    mapping.method = "cp-sat" if order is None else "cp-sat (fixed schedule)"
    result = SolveResult(status, value, bound, gap, seconds, solution=mapping, solver="cp-sat",
                         message=solver.StatusName(code),
                         model_size={"variables": len(model.Proto().variables),
                                     "constraints": len(model.Proto().constraints)})
    return result, mapping


def _hint_residency(model: cp_model.CpModel, graph: TensorGraph, hint: Mapping, records, spills, lengths, covers,
                    unit: int, entering: dict[str, int | None]) -> None:
    """Hint a whole known mapping (a baseline, or a window's baseline continued from the
    committed state): each tensor's residency runs as its first and reload intervals, their
    addresses, spills and which interval serves each consumer. With a complete hint CP-SAT
    starts from that mapping instead of searching for a first one, which it does not find in a
    minute on 185-353-operator training graphs. Runs beyond the model's reload limit are left
    out (CP-SAT then repairs the hint or ignores it)."""
    position = {op: t for t, op in enumerate(hint.order)}
    all_runs = hint.residency_runs()
    for name, intervals in records.items():
        runs = list(all_runs.get(name, []))  # (start, end, address)
        carried = name in entering
        if graph.tensors[name].producer is None and not carried:  # one interval per use
            for _, start, _, address, consumer in intervals:
                run = next((r for r in runs if r[0] <= position[consumer] < r[1]), None)
                if run is not None:
                    model.AddHint(address, run[2] // unit)
            continue
        if name in spills:
            model.AddHint(spills[name], any(name in step.spilled for step in hint.steps))
        # records[i] is interval r = i, or r = i + 1 for a tensor only in host at a window's start
        has_first = not carried or entering[name] is not None
        assigned: list[tuple[int, int, int] | None] = []
        if has_first:
            keeps = bool(runs) and (not carried or (runs[0][0] == 0 and runs[0][2] == entering[name]))
            assigned.append(runs.pop(0) if keeps else None)
        assigned += runs
        for index, (present, start, end, address, _) in enumerate(intervals):
            r = index if has_first else index + 1
            run = assigned[index] if index < len(assigned) else None
            if present is not None:
                model.AddHint(present, run is not None)
            if run is None:
                continue
            if r > 0:  # the first interval starts with its producer (hinted) or at 0
                model.AddHint(start, run[0])
            if r > 0 or not carried:  # a carried tensor's first address is a constant
                model.AddHint(address, run[2] // unit)
            model.AddHint(end, run[1])
            if (name, r) in lengths:
                model.AddHint(lengths[name, r], run[1] - run[0])
            for consumer in graph.consumers[name]:
                if (name, r, consumer) in covers:
                    model.AddHint(covers[name, r, consumer], run[0] <= position[consumer] < run[1])


def extract(graph: TensorGraph, solver: cp_model.CpSolver, pos, records, spills, unit: int, capacity: int,
            entering: dict[str, int | None]) -> Mapping:
    """Rebuild the steps (resident sets, spills, reloads) from a solution."""
    order = sorted(graph.operators, key=lambda op: solver.Value(pos[op]))
    steps = [Step(op) for op in order]
    for name, intervals in records.items():
        live = []
        for present, start, end, address, _ in intervals:
            if present is not None and not solver.BooleanValue(present):
                continue
            live.append((solver.Value(start), solver.Value(end), solver.Value(address) * unit))
        for start, end, address in live:
            for t in range(start, min(end, len(steps))):
                steps[t].resident[name] = address
        tensor = graph.tensors[name]
        carried = name in entering
        if tensor.producer is None and not carried:
            continue
        resident_first = bool(live) and (tensor.producer is not None or (entering[name] is not None
                                                                        and live[0][0] == 0))
        for k, (start, end, address) in enumerate(live):
            if k > 0 or not resident_first:
                steps[start].retrieved.append(name)
        if name in spills and solver.BooleanValue(spills[name]):
            # written to host the first time it leaves: after its first interval, or at the start
            leave = live[0][1] if resident_first else 0
            if leave < len(steps) and (not resident_first or name not in steps[leave].resident):
                steps[leave].spilled.append(name)
    return Mapping(capacity, steps)
