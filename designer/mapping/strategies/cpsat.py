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
     interval [pos_c, pos_c + 1) at its own address per consumer, at no counted cost; two
     consumers on consecutive steps share the address (resident throughout, it cannot move).
     Under the dram objective it is instead a tensor only in host at the start, with up to one
     interval per consumer as in (C2)-(C3); every interval after the first is a re-read (C6);
(C5) NoOverlap2D over the (time, address) rectangles of all intervals, addresses within
     [0, M - size]; a redundant Cumulative over time with capacity M;
(C6) objective: sum_T price_T (y_T + sum_r x_r): one spill (y_T, the first time a tensor
     leaves) and one retrieval per reload (for an input under dram: per interval but the
     first, and no spill); price_T is the objective's price of moving T once
     (its size for off-chip bytes, :mod:`designer.mapping.core.objective`), divided by the GCD of
     the prices.

R (``max_reloads``) limits the reloads per tensor; tests check that raising it does not change
the optimum on small graphs. With ``addresses=False`` the model drops (C5)'s rectangles and
keeps the Cumulative: the minimum-peak and relaxed problems.
"""

from __future__ import annotations

import math
import time
from functools import reduce

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping, MappingOutcome, Step
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from designer.mapping.core.units import gcd_unit, transfer_prices
from solvers.cpsat import run_cpsat
from solvers.result import SolveResult, Status

def min_peak(graph: TensorGraph, time_limit: float = 30.0, threads: int = 1, seed: int = 0,
             work_limit: float | None = None) -> tuple[SolveResult, list[str] | None, bool]:
    """M_P: the least peak of live bytes over schedules without spilling (no addresses);
    returns the result (objective = best peak found, bound = proven lower bound), its order, and
    whether the search ended by proof or by ``work_limit`` (CP-SAT's deterministic time: the
    same answer on any machine) rather than by the clock."""
    start = time.perf_counter()
    n = len(graph.operators)
    model = cp_model.CpModel()
    pos = _positions(model, graph, _windows(graph, None))
    intervals, demands = [], []
    for name, tensor in graph.tensors.items():
        consumers = graph.consumers[name]
        if tensor.producer is None:
            for c in consumers:
                intervals.append(model.new_interval_var(pos[c], 1, pos[c] + 1, f"use[{name},{c}]"))
                demands.append(tensor.bytes)
            continue
        end = model.new_int_var(1, n, f"end[{name}]")
        model.add_max_equality(end, [pos[tensor.producer] + 1] + [pos[c] + 1 for c in consumers])
        size = model.new_int_var(1, n, f"len[{name}]")
        intervals.append(model.new_interval_var(pos[tensor.producer], size, end, f"live[{name}]"))
        demands.append(tensor.bytes)
    lower = max(graph.operand_bytes(op) for op in graph.operators)
    peak = model.new_int_var(lower, sum(t.bytes for t in graph.tensors.values()) * max(1, n), "peak")
    model.add_cumulative(intervals, demands, peak)
    model.minimize(peak)
    solver, status, message, size = run_cpsat(model, time_limit, threads, seed, work_limit)
    settled = status == Status.OPTIMAL or (work_limit is not None and
                                           solver.response_proto.deterministic_time >= 0.99 * work_limit)
    order = None
    objective = bound = None
    if status.has_solution:
        order = sorted(graph.operators, key=lambda op: solver.value(pos[op]))
        objective, bound = solver.objective_value, solver.best_objective_bound
    gap = None if objective is None else (objective - bound) / max(objective, 1e-9)
    return SolveResult(status, objective, bound, gap, time.perf_counter() - start, solution=order, solver="cp-sat",
                       message=message, model_size=size), order, settled


@dataclass
class _Model:
    """A CP-SAT mapping model under construction: what the equation groups share."""

    model: cp_model.CpModel
    graph: TensorGraph
    pos: dict[str, cp_model.IntVar]
    windows: dict[str, tuple[int, int]]
    capacity: int  # scratchpad in GCD units
    unit: int  # the GCD of sizes, scratchpad and entering addresses, in bytes
    entering: dict[str, int | None]
    hosted: set[str] | frozenset[str]
    leaving: set[str] | frozenset[str]
    max_reloads: int
    reloads_inputs: bool  # the objective prices re-reading an input or weight (dram)
    x_intervals: list = field(default_factory=list)  # time
    y_intervals: list = field(default_factory=list)  # address
    demands: list[int] = field(default_factory=list)
    prices: list[tuple[int, cp_model.IntVar]] = field(default_factory=list)  # (tensor's price, literal)
    # records[name]: (presence or None, start, end, address, consumer or None) per interval
    records: dict[str, list] = field(default_factory=dict)
    spills: dict[str, cp_model.IntVar] = field(default_factory=dict)
    lengths: dict[tuple[str, int], cp_model.IntVar] = field(default_factory=dict)  # for hints
    covers: dict[tuple[str, int, str], cp_model.IntVar] = field(default_factory=dict)  # (T, interval, consumer)

    @property
    def n(self) -> int:
        return len(self.graph.operators)

    def read_input(self, name: str) -> bool:
        """An input or weight of the whole graph whose reads are priced (dram): only in host at
        the start, up to one interval per consumer."""
        return self.reloads_inputs and self.graph.tensors[name].producer is None and name not in self.entering

    def only_in_host(self, name: str) -> bool:
        """No first interval: a read input, or a tensor carried into a window only in host."""
        return self.read_input(name) or (name in self.entering and self.entering[name] is None)

    def interval(self, start, length, end, address, size: int, present, label: str) -> None:
        """One (time, address) rectangle, optional when ``present`` is a literal."""
        if present is None:
            self.x_intervals.append(self.model.new_interval_var(start, length, end, f"t{label}"))
            self.y_intervals.append(self.model.new_fixed_size_interval_var(address, size, f"m{label}"))
        else:
            self.x_intervals.append(self.model.new_optional_interval_var(start, length, end, present, f"t{label}"))
            self.y_intervals.append(self.model.new_optional_fixed_size_interval_var(address, size, present,
                                                                                     f"m{label}"))
        self.demands.append(size)


def _windows(graph: TensorGraph, order: list[str] | None) -> dict[str, tuple[int, int]]:
    """Each operator's possible positions: its window, or its place in a fixed ``order``."""
    return graph.position_windows() if order is None else {op: (i, i) for i, op in enumerate(order)}


def _positions(model: cp_model.CpModel, graph: TensorGraph,
               windows: dict[str, tuple[int, int]]) -> dict[str, cp_model.IntVar]:
    """(C1) one position per operator, all different, after its predecessors, within its window."""
    pos = {op: model.new_int_var(lo, hi, f"pos[{op}]") for op, (lo, hi) in windows.items()}
    model.add_all_different(list(pos.values()))
    for a, b in graph.dag.edges:
        model.add(pos[a] + 1 <= pos[b])
    return pos


def _free_inputs(m: _Model, name: str, size: int) -> None:
    """(C4) a tensor read from host for each use: one step at its own address per consumer,
    the same address for two consumers on consecutive steps (resident throughout)."""
    addresses = {}
    for c in dict.fromkeys(m.graph.consumers[name]):
        address = addresses[c] = m.model.new_int_var(0, m.capacity - size, f"a[{name},{c}]")
        m.interval(m.pos[c], 1, m.pos[c] + 1, address, size, None, f"[{name},{c}]")
        m.records[name].append((None, m.pos[c], m.pos[c] + 1, address, c))
    for first in addresses:
        for then in addresses:
            if first != then:
                adjacent = m.model.new_bool_var(f"next[{name},{first},{then}]")
                m.model.add(m.pos[then] == m.pos[first] + 1).only_enforce_if(adjacent)
                m.model.add(m.pos[then] != m.pos[first] + 1).only_enforce_if(adjacent.negated())
                m.model.add(addresses[then] == addresses[first]).only_enforce_if(adjacent)


def _first_residency(m: _Model, name: str, size: int):
    """(C2) the first interval: from the producer's step, or from the window's start at the
    address it has there; returns (end, the step it first leaves, its presence literal or None),
    ends None for a tensor only in host when the window starts."""
    model, tensor = m.model, m.graph.tensors[name]
    if m.read_input(name):
        return None, None, None
    if tensor.producer is not None:
        begin = m.pos[tensor.producer]
        e0 = model.new_int_var(m.windows[tensor.producer][0] + 1, m.n, f"e0[{name}]")
        length0 = m.lengths[name, 0] = model.new_int_var(1, m.n, f"len0[{name}]")
        a0 = model.new_int_var(0, m.capacity - size, f"a0[{name}]")
        model.add(length0 == e0 - begin)
        m.interval(begin, length0, e0, a0, size, None, f"0[{name}]")
        m.records[name].append((None, begin, e0, a0, None))
        return e0, e0, None
    if m.entering[name] is None:
        return None, None, None
    present = model.new_bool_var(f"p0[{name}]")
    e0 = model.new_int_var(1, m.n, f"e0[{name}]")
    address = model.new_constant(m.entering[name] // m.unit)
    m.interval(0, e0, e0, address, size, present, f"0[{name}]")
    m.records[name].append((present, 0, e0, address, None))
    drop = model.new_int_var(0, m.n, f"drop[{name}]")  # the step it first leaves: e0, or 0
    model.add(drop == e0).only_enforce_if(present)
    model.add(drop == 0).only_enforce_if(present.negated())
    return e0, drop, present


def _covered_by_first(m: _Model, name: str, e0, first_present, cover: dict, end_cover: list) -> None:
    """(C3) consumers served by the first interval; a leaving tensor may stay to the end."""
    model = m.model
    for c in m.graph.consumers[name]:
        b = m.covers[name, 0, c] = model.new_bool_var(f"b0[{name},{c}]")
        model.add(m.pos[c] <= e0 - 1).only_enforce_if(b)
        if first_present is not None:
            model.add_implication(b, first_present)
        cover[c].append(b)
    if name in m.leaving:
        stays = model.new_bool_var(f"end0[{name}]")
        model.add(e0 == m.n).only_enforce_if(stays)
        if first_present is not None:
            model.add_implication(stays, first_present)
        end_cover.append(stays)


def _reloads(m: _Model, name: str, size: int, price: int, spill, drop, cover: dict, end_cover: list) -> None:
    """(C2)-(C3) up to R optional reload intervals, each after a step away, each serving the
    consumers inside it; each present one is a retrieval (C6)."""
    model = m.model
    previous_end, previous_present = drop, None
    read = m.read_input(name)
    for r in range(1, (max(m.max_reloads, len(set(m.graph.consumers[name]))) if read else m.max_reloads) + 1):
        present = model.new_bool_var(f"x{r}[{name}]")
        model.add_implication(present, previous_present if previous_present is not None else spill)
        s_r = model.new_int_var(0, m.n - 1, f"s{r}[{name}]")
        e_r = model.new_int_var(1, m.n, f"e{r}[{name}]")
        length = m.lengths[name, r] = model.new_int_var(1, m.n, f"len{r}[{name}]")
        model.add(length == e_r - s_r)
        if previous_end is not None:  # absent for a step before coming back (rule 6)
            model.add(s_r >= previous_end + 1).only_enforce_if(present)
        a_r = model.new_int_var(0, m.capacity - size, f"a{r}[{name}]")
        m.interval(s_r, length, e_r, a_r, size, present, f"{r}[{name}]")
        for c in m.graph.consumers[name]:
            b = m.covers[name, r, c] = model.new_bool_var(f"b{r}[{name},{c}]")
            model.add_implication(b, present)
            model.add(s_r <= m.pos[c]).only_enforce_if(b)
            model.add(m.pos[c] <= e_r - 1).only_enforce_if(b)
            cover[c].append(b)
        if name in m.leaving:
            stays = model.new_bool_var(f"end{r}[{name}]")
            model.add_implication(stays, present)
            model.add(e_r == m.n).only_enforce_if(stays)
            end_cover.append(stays)
        if not (read and r == 1):  # an input's first read is compulsory, not priced
            m.prices.append((price, present))
        m.records[name].append((present, s_r, e_r, a_r, None))
        previous_end, previous_present = e_r, present


def _tensor(m: _Model, name: str, size: int, price: int) -> None:
    """(C2)-(C4) and the spill literal of one tensor."""
    tensor, model = m.graph.tensors[name], m.model
    m.records[name] = []
    if tensor.producer is None and name not in m.entering and not m.read_input(name):
        _free_inputs(m, name, size)
        return
    e0, drop, first_present = _first_residency(m, name, size)
    if tensor.producer is not None and not m.graph.consumers[name] and name not in m.leaving:
        model.add(e0 == m.pos[tensor.producer] + 1)  # dead on arrival: gone after its step
        return
    already_hosted = name in m.hosted or (tensor.producer is None and m.entering.get(name) is None)  # inputs too
    if already_hosted:
        spill = model.new_constant(1)
    else:
        spill = m.spills[name] = model.new_bool_var(f"y[{name}]")
        m.prices.append((price, spill))
    cover = {c: [] for c in m.graph.consumers[name]}
    end_cover: list = []
    if e0 is not None:
        _covered_by_first(m, name, e0, first_present, cover, end_cover)
    _reloads(m, name, size, price, spill, drop, cover, end_cover)
    for c in m.graph.consumers[name]:
        model.add_bool_or(cover[c])
    if name in m.leaving:  # resident at the last step, or a host copy for later
        model.add_bool_or(end_cover + [spill])
    if first_present is not None and not already_hosted:
        # leaving at the window's start while still needed needs a host copy
        model.add_implication(first_present.negated(), spill)


def solve_mapping(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
                  objective: Objective = OFFCHIP_BYTES, max_reloads: int = 2, threads: int = 1, seed: int = 0,
                  hint: Mapping | None = None, order: list[str] | None = None, known_bound: float | None = None,
                  entering: dict[str, int | None] | None = None, hosted: set[str] | frozenset[str] = frozenset(),
                  leaving: set[str] | frozenset[str] = frozenset()) -> MappingOutcome:
    """Minimise the objective (off-chip bytes by default) over schedules, addresses and spills;
    ``order`` fixes the schedule (the paper's fixed-schedule mode); ``hint`` warm-starts from a
    mapping (a baseline); ``known_bound``: a proven lower bound on the objective, e.g. the
    address-free MILP's, added as a constraint so CP-SAT can stop once it reaches it.

    Boundary conditions, for solving one window of a larger graph (:mod:`designer.mapping.strategies.divide`):
    ``entering`` maps tensors produced before the window (producer-less in ``graph``) to their
    address if resident just before it, or None if only in host; ``hosted`` are tensors with a
    host copy already; ``leaving`` tensors are needed after the window, so each ends resident
    at the last step or with a host copy."""
    start = time.perf_counter()
    entering = entering or {}
    addresses = [a for a in entering.values() if a is not None]
    unit = reduce(math.gcd, [gcd_unit(graph, scratchpad_bytes)] + addresses)
    prices, price_unit = transfer_prices(graph, objective)  # prices in units of their GCD
    model, windows = cp_model.CpModel(), _windows(graph, order)
    m = _Model(model, graph, _positions(model, graph, windows), windows, scratchpad_bytes // unit, unit, entering,
               hosted, leaving, max_reloads, objective.reloads_inputs)

    # (C1) above; (C2)-(C4) intervals, covers and spills per tensor
    for name, tensor in graph.tensors.items():
        if tensor.bytes // unit > m.capacity:
            raise ValueError(f"tensor {name!r} ({tensor.bytes} bytes) is larger than the scratchpad")
        _tensor(m, name, tensor.bytes // unit, prices[name])
    # (C5) space: rectangles, and the redundant cumulative
    model.add_no_overlap_2d(m.x_intervals, m.y_intervals)
    model.add_cumulative(m.x_intervals, m.demands, m.capacity)
    # (C6) objective: one spill per tensor that ever leaves while needed, one retrieval per reload
    total = sum(price * literal for price, literal in m.prices)
    model.minimize(total)
    if known_bound is not None and m.prices:
        model.add(total >= math.ceil(known_bound / price_unit - 1e-9))
    if hint is not None:
        for t, op in enumerate(hint.order):  # the schedule of a known mapping; CP-SAT completes the rest
            model.add_hint(m.pos[op], t)
        if any(step.resident for step in hint.steps):
            _hint_residency(m, hint)

    solver, status, message, size = run_cpsat(model, time_limit, threads, seed)
    seconds = time.perf_counter() - start
    if not status.has_solution:
        return MappingOutcome(None, SolveResult(status, seconds=seconds, solver="cp-sat",
                                                message=message, model_size=size))
    mapping = extract(m, solver, "cp-sat" if order is None else "cp-sat (fixed schedule)")
    value, bound = solver.objective_value * price_unit, solver.best_objective_bound * price_unit
    gap = 0.0 if value == bound else (value - bound) / max(value, 1e-9)
    return MappingOutcome(mapping, SolveResult(status, value, bound, gap, seconds, solver="cp-sat",
                                               message=message, model_size=size))


def _hint_residency(m: _Model, hint: Mapping) -> None:
    """Hint a whole known mapping (a baseline, or a window's baseline continued from the
    committed state): each tensor's residency runs as its first and reload intervals, their
    addresses, spills and which interval serves each consumer. With a complete hint CP-SAT
    starts from that mapping instead of searching for a first one, which it does not find in a
    minute on the large training graphs (benchmarks/README.md). Runs beyond the model's reload limit are left
    out (CP-SAT then repairs the hint or ignores it)."""
    model, graph, records, spills, unit, entering = m.model, m.graph, m.records, m.spills, m.unit, m.entering
    lengths, covers = m.lengths, m.covers
    position = {op: t for t, op in enumerate(hint.order)}
    all_runs = hint.residency_runs()
    for name, intervals in records.items():
        runs = list(all_runs.get(name, []))  # (start, end, address)
        carried = name in entering
        if graph.tensors[name].producer is None and not carried and not m.read_input(name):  # one interval per use
            for _, start, _, address, consumer in intervals:
                run = next((r for r in runs if r[0] <= position[consumer] < r[1]), None)
                if run is not None:
                    model.add_hint(address, run[2] // unit)
            continue
        if name in spills:
            model.add_hint(spills[name], any(name in step.spilled for step in hint.steps))
        # records[i] is interval r = i, or r = i + 1 for a tensor only in host at a window's start
        has_first = not m.only_in_host(name)
        assigned: list[tuple[int, int, int] | None] = []
        if has_first:
            keeps = bool(runs) and (not carried or (runs[0][0] == 0 and runs[0][2] == entering[name]))
            assigned.append(runs.pop(0) if keeps else None)
        assigned += runs
        for index, (present, start, end, address, _) in enumerate(intervals):
            r = index if has_first else index + 1
            run = assigned[index] if index < len(assigned) else None
            if present is not None:
                model.add_hint(present, run is not None)
            if run is None:
                continue
            if r > 0:  # the first interval starts with its producer (hinted) or at 0
                model.add_hint(start, run[0])
            if r > 0 or not carried:  # a carried tensor's first address is a constant
                model.add_hint(address, run[2] // unit)
            model.add_hint(end, run[1])
            if (name, r) in lengths:
                model.add_hint(lengths[name, r], run[1] - run[0])
            for consumer in graph.consumers[name]:
                if (name, r, consumer) in covers:
                    model.add_hint(covers[name, r, consumer], run[0] <= position[consumer] < run[1])


def extract(m: _Model, solver: cp_model.CpSolver, method: str) -> Mapping:
    """Rebuild the steps (resident sets, spills, reloads) from a solution."""
    graph, pos, records, spills, unit, entering = m.graph, m.pos, m.records, m.spills, m.unit, m.entering
    order = sorted(graph.operators, key=lambda op: solver.value(pos[op]))
    steps = [Step(op) for op in order]
    for name, intervals in records.items():
        live = []
        for present, start, end, address, _ in intervals:
            if present is not None and not solver.boolean_value(present):
                continue
            live.append((solver.value(start), solver.value(end), solver.value(address) * unit))
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
        if name in spills and solver.boolean_value(spills[name]):
            # written to host the first time it leaves: after its first interval, or at the start
            leave = live[0][1] if resident_first else 0
            if leave < len(steps) and (not resident_first or name not in steps[leave].resident):
                steps[leave].spilled.append(name)
    return Mapping(m.capacity * m.unit, steps, method)
