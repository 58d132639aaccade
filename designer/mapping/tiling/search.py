"""Choosing a tiling (:mod:`designer.mapping.tiling.plan`) for a scratchpad, and the curve of traffic
against scratchpad size a hardware designer reads.

:func:`candidates` imports the model once per (cut, k), plus untiled. For a scratchpad,
:func:`choose` keeps the candidates whose M_R fits (and whose recomputed MACs stay within
``max_extra_macs`` of the model's), orders them by recomputed MACs, then M_R, and solves the
first :data:`SOLVED` of them with equal shares of the time: the least objective wins, fewer
MACs breaking ties, and a candidate that moves nothing ends the search (untiled comes first,
so a model is tiled only when that pays). :func:`traffic_curve` does this at each of a series
of scratchpads, smallest first, each point also trying the previous point's tiling from its
mapping (valid at every larger scratchpad), so the curve never rises.

What it gives up: only :data:`SOLVED` candidates are solved per scratchpad, the cheapest in
MACs, so a tiling that recomputes more but moves less may go untried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from designer import checks
from designer.deadline import Deadline
from designer.mapping.strategies.baselines import required_bytes
from designer.mapping.core.graph import TensorGraph
from designer.mapping.sources.importer import tiled
from designer.mapping.core.io import Mapping
from designer.mapping.problem import Budgets, MappingError, MappingProblem, budgets, check_scratchpad
from designer.mapping.stages import solve
from designer.mapping.result import MappingResult
from designer.mapping.tiling.plan import TilePlan, Tiling, cut_points, model_macs, plan, run_tiled, tiled_required

KS = (2, 3, 4, 6, 8)  # patches per side tried
SOLVED = 3  # candidates solved per scratchpad, at most


class Candidate:
    """A way to import the model: untiled (``tiling`` None) or one tiling. Its M_R is known by
    arithmetic (:func:`~designer.mapping.tiling.plan.tiled_required`); its graph is imported when
    first asked for."""

    def __init__(self, program, tiling: Tiling | None, tile_plan: TilePlan | None, required: int,
                 import_options: dict, graph: TensorGraph | None = None):
        self.program, self.tiling, self.plan, self.required = program, tiling, tile_plan, required
        self.extra_macs = 0 if tile_plan is None else tile_plan.extra_macs
        self._options, self._graph, self._budgets = import_options, graph, None

    @property
    def graph(self) -> TensorGraph:
        if self._graph is None:
            self._graph = tiled(self.program, self.tiling, **self._options)[0]
        return self._graph

    def budgets(self, time_limit: float) -> Budgets:
        """The graph's M_R, M_P, M_H, computed once (a curve solves one candidate at many sizes)."""
        if self._budgets is None:
            self._budgets = budgets(self.graph, time_limit=time_limit)
        return self._budgets

    def describe(self) -> str:
        if self.tiling is None:
            return "untiled"
        return f"{self.tiling.k}x{self.tiling.k} patches up to {self.tiling.cut} (+{self.extra_macs:,} MACs)"


def candidates(program, bytes_per_element: int = 1, include_weights: bool = False, name: str = "",
               ks: tuple[int, ...] = KS) -> list[Candidate]:
    """Untiled, then every cut point x k of ``program`` (decomposed: :func:`designer.mapping.
    importer.export`)."""
    name = name or "model"
    options = dict(bytes_per_element=bytes_per_element, include_weights=include_weights, name=name)
    whole, _ = tiled(program, None, **options)
    found = [Candidate(program, None, None, required_bytes(whole), options, whole)]
    users = {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    for cut in cut_points(program.graph, users):
        barrier = None  # the untiled graph with the cut's fusion barrier, once per cut
        for k in ks:
            tile_plan = plan(program.graph, users, Tiling(cut, k), checked=True)
            if barrier is None:
                barrier = tiled(program, None, barrier=frozenset(tile_plan.region), **options)[0]
            found.append(Candidate(program, Tiling(cut, k), tile_plan, tiled_required(barrier, tile_plan),
                                   {**options, "name": f"{name} ({k}x{k} up to {cut})"}))
    return found


def _allowed(found: list[Candidate], max_extra_macs: float | None, total_macs: int) -> list[Candidate]:
    """The candidates recomputing at most ``max_extra_macs`` of the model's MACs (None: any)."""
    cap = math.inf if max_extra_macs is None else max_extra_macs * total_macs
    return [c for c in found if c.extra_macs <= cap]


def feasible(found: list[Candidate], scratchpad_bytes: int, max_extra_macs: float | None,
             total_macs: int) -> list[Candidate]:
    """The candidates that fit ``scratchpad_bytes``, fewest recomputed MACs first."""
    fits = [c for c in _allowed(found, max_extra_macs, total_macs) if c.required <= scratchpad_bytes]
    return sorted(fits, key=lambda c: (c.extra_macs, c.required))


def smallest_footprint(found: list[Candidate], max_extra_macs: float | None, total_macs: int) -> Candidate:
    return min(_allowed(found, max_extra_macs, total_macs), key=lambda c: (c.required, c.extra_macs))


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    result: MappingResult
    solved: int  # candidates solved for this scratchpad


def choose(found: list[Candidate], scratchpad_bytes: int, *, time_limit: float, strategy: str = "cpsat",
           objective: str = "offchip", max_extra_macs: float | None = None, total_macs: int = 0,
           previous: tuple[Candidate, Mapping] | None = None, option: str = "scratchpad") -> Choice:
    """The best candidate for ``scratchpad_bytes`` (module docstring); ``previous``: a
    candidate and its mapping at a smaller scratchpad, tried first, from that mapping;
    ``option``: what an error names the scratchpad (the command line's ``--scratchpad``)."""
    fits = feasible(found, scratchpad_bytes, max_extra_macs, total_macs)
    if not fits:
        smallest = smallest_footprint(found, max_extra_macs, total_macs)
        capped = ""
        if max_extra_macs is not None:  # name the cap, and what lifting it would reach
            free = smallest_footprint(found, None, total_macs)
            capped = (f" with at most {max_extra_macs:g} of the model's MACs recomputed (--max-extra-macs); "
                      f"without that cap {free.required:,} bytes ({free.describe()}, "
                      f"{free.extra_macs / max(1, total_macs):.3f} of the MACs recomputed)")
        raise MappingError(f"{option}: {scratchpad_bytes:,} bytes is below the smallest footprint any tiling "
                           f"reaches, {smallest.required:,} bytes ({smallest.describe()}){capped}")
    queue = fits[:SOLVED]
    if previous is not None and previous[0] not in queue:  # always tried: the curve never rises
        queue = sorted(queue[:SOLVED - 1] + [previous[0]], key=lambda c: (c.extra_macs, c.required))
    deadline, best, solved = Deadline.starting_now(time_limit), None, 0
    for i, candidate in enumerate(queue):
        share = max(0.1 * time_limit, deadline.left() / (len(queue) - i))
        start = previous[1] if previous is not None and candidate is previous[0] else None
        result = solve(MappingProblem(candidate.graph, scratchpad_bytes, strategy, objective, time_limit=share,
                                      start=start, budgets=candidate.budgets(0.2 * share)))
        solved += 1
        value = result.solve.objective
        if value is not None and (best is None or (value, candidate.extra_macs) <
                                  (best.result.solve.objective, best.candidate.extra_macs)):
            best = Choice(candidate, result, solved)
        if value == 0:
            break
    if best is None:
        raise MappingError(f"no mapping found at {scratchpad_bytes:,} bytes in {time_limit:.0f} s")
    return Choice(best.candidate, best.result, solved)


# the least time one scratchpad size of a curve is given: a curve of N sizes needs N times this
MIN_POINT_SECONDS = 1.0


def traffic_curve(found: list[Candidate], low: int, high: int, points: int, *, time_limit: float,
                  strategy: str = "cpsat", objective: str = "offchip", max_extra_macs: float | None = None,
                  total_macs: int = 0, progress=None, start: tuple[Candidate, Mapping] | None = None) -> list[dict]:
    """One row per scratchpad, ``points`` of them geometrically from ``low`` to ``high``: the
    chosen candidate's objective, bound, gap and status, and the untiled graph's where it fits;
    ``time_limit`` for all of it. ``start``: a candidate and its mapping at ``low`` or below
    (e.g. a longer solve's), which the first point starts from."""
    sizes = sorted({round(low * (high / low) ** (i / max(1, points - 1))) for i in range(points)})
    untiled = next(c for c in found if c.tiling is None)
    rows, previous, previous_untiled, deadline = [], start, None, Deadline.starting_now(time_limit)
    for i, size in enumerate(sizes):
        share = max(MIN_POINT_SECONDS, deadline.left() / (len(sizes) - i))
        choice = choose(found, size, time_limit=share * (0.6 if untiled.required <= size else 1.0),
                        strategy=strategy, objective=objective, max_extra_macs=max_extra_macs,
                        total_macs=total_macs, previous=previous)
        previous = (choice.candidate, choice.result.mapping)
        row = {"scratchpad_bytes": size, "tiling": choice.candidate.describe(), "extra_macs":
               choice.candidate.extra_macs, **_figures(choice.result)}
        if untiled.required <= size:  # the same question without tiling, for the second series
            plain = solve(MappingProblem(untiled.graph, size, strategy, objective, time_limit=0.4 * share,
                                   start=previous_untiled, budgets=untiled.budgets(0.08 * share)))
            previous_untiled = plain.mapping
            row["untiled"] = _figures(plain)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _figures(result: MappingResult) -> dict:
    return {"objective": result.solve.objective, "bound": result.solve.bound, "gap": result.solve.gap,
            "status": str(result.solve.status), "offchip_bytes": result.offchip_bytes,
            "dram_traffic": result.dram_bytes["traffic"], "valid": bool(result.replay)}


def plot_curve(rows: list[dict], path, title: str = "") -> None:
    """Traffic (and its proven bound) against scratchpad size, tiled and untiled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from designer import files
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = [r["scratchpad_bytes"] for r in rows]
    ax.plot(x, [r["objective"] for r in rows], "o-", label="tiling chosen")
    ax.plot(x, [r["bound"] if r["bound"] is not None else float("nan") for r in rows], "v--", label="proven bound")
    plain = [(r["scratchpad_bytes"], r["untiled"]["objective"]) for r in rows if "untiled" in r]
    if plain:
        ax.plot([p[0] for p in plain], [p[1] for p in plain], "s:", label="untiled")
        ax.axvline(plain[0][0], color="grey", linewidth=0.8, linestyle=":")  # from here the untiled graph fits
    ax.set_xscale("log"), ax.set_xlabel("scratchpad (bytes)"), ax.set_ylabel("traffic (bytes)")
    ax.set_title(title), ax.legend()
    fig.tight_layout()
    files.save_figure(fig, path)


@dataclass(frozen=True)
class TiledMapping:
    """A mapping with tiling chosen (or given): the choice, what was weighed, and the numerical
    check of the tiled computation against the untiled model (largest absolute difference)."""

    choice: Choice
    candidates: int
    total_macs: int
    max_abs_difference: float | None

    @property
    def result(self) -> MappingResult:
        return self.choice.result

    def to_dict(self) -> dict:
        candidate = self.choice.candidate
        return {**self.result.to_dict(), "tiling": None if candidate.tiling is None else
                {"cut": candidate.tiling.cut, "k": candidate.tiling.k, "extra_macs": candidate.extra_macs,
                 "model_macs": self.total_macs, "max_abs_difference": self.max_abs_difference},
                "candidates": self.candidates, "candidates_solved": self.choice.solved}


def parse_tiling(text: str) -> Tiling | str | None:
    """``none``, ``auto`` or ``CUT:K`` (an fx node name and patches per side), as typed."""
    if text in ("none", "auto"):
        return None if text == "none" else "auto"
    cut, _, k = text.rpartition(":")
    if not cut or not k.isdigit() or int(k) < 1:
        raise ValueError(f"--tiling: none, auto or CUT:K (e.g. relu_4:3), got {text!r}")
    return Tiling(cut, int(k))


def map_tiled(program, example, scratchpad: int | str, tiling: Tiling | str = "auto", *, time_limit: float = 60.0,
              strategy: str = "cpsat", objective: str = "offchip", max_extra_macs: float | None = None,
              bytes_per_element: int = 1, include_weights: bool = False, name: str = "",
              found: list[Candidate] | None = None, option: str = "scratchpad") -> TiledMapping:
    """Map an exported model (:func:`designer.mapping.sources.importer.export`) at ``scratchpad`` (bytes,
    or a budget's name, of the untiled graph) with ``tiling`` ("auto": :func:`choose`), within
    ``time_limit``, and check the chosen tiling numerically on ``example``. ``found``: the
    model's :func:`candidates`, when already made (a caller mapping at several sizes); ``option``:
    what an error names the scratchpad."""
    deadline = Deadline.starting_now(time_limit)
    if found is None or (tiling != "auto" and tiling.k not in {c.tiling.k for c in found if c.tiling}):
        found = candidates(program, bytes_per_element, include_weights, name,
                           KS if tiling == "auto" else (tiling.k,))
    if tiling != "auto":
        given = [c for c in found if c.tiling == tiling]
        if not given:
            cuts = ", ".join(dict.fromkeys(c.tiling.cut for c in found if c.tiling is not None))
            raise MappingError(f"--tiling: {tiling.cut} cannot end a tiled prefix; these can: {cuts}")
        found = given
    total = model_macs(program.graph)
    size = check_scratchpad(scratchpad, option)
    if isinstance(size, str):  # a budget of the untiled graph (imported already when tiling is chosen)
        untiled = next((c.graph for c in found if c.tiling is None), None) or \
            tiled(program, None, bytes_per_element, include_weights, name)[0]
        size = budgets(untiled, time_limit=0.2 * time_limit).bytes_of(size)
    choice = choose(found, size, time_limit=max(1.0, deadline.left()),
                    strategy=strategy, objective=objective, max_extra_macs=max_extra_macs, total_macs=total,
                    option=option)
    difference = None
    if choice.candidate.plan is not None:
        tiled_value, whole = run_tiled(program, choice.candidate.plan, example)
        difference = float((tiled_value - whole).abs().max())
    return TiledMapping(choice, len(found), total, difference)


def check_curve(low: int | str, high: int | str, points: int, time_limit: float) -> None:
    """A curve's ends (bytes, M_R, M_H, M_P or ``min``) and ``points`` sizes the time limit can
    serve, :data:`MIN_POINT_SECONDS` each; errors name ``--curve`` and ``--points``. The CLI calls
    it before the model is exported, :func:`map_curve` for the API."""
    for end in (low, high):
        if end != "min":
            check_scratchpad(end, "--curve: an end")  # the ends are --curve's, not a --scratchpad
    checks.integer(points, "--points", minimum=2)
    most = int(time_limit // MIN_POINT_SECONDS)
    if points > most:
        raise ValueError(f"--points: {points} scratchpad sizes cannot be served within --time-limit {time_limit:g} s "
                         f"(each needs at least {MIN_POINT_SECONDS:g} s): at most {most}, or a longer --time-limit "
                         f"({points * MIN_POINT_SECONDS:g} s for {points})")


def map_curve(program, low: int | str = "min", high: int | str = "M_P", points: int = 8, *, time_limit: float = 120.0,
              strategy: str = "cpsat", objective: str = "offchip", max_extra_macs: float | None = None,
              bytes_per_element: int = 1, include_weights: bool = False, name: str = "", progress=None,
              found: list[Candidate] | None = None) -> list[dict]:
    """:func:`traffic_curve` of an exported model from ``low`` to ``high``: bytes, a budget of
    the untiled graph (M_R, M_H, M_P), or ``min``, the smallest footprint a tiling reaches;
    ``found``: the model's :func:`candidates`, when already made."""
    deadline = Deadline.starting_now(time_limit)
    check_curve(low, high, points, time_limit)
    found = found if found is not None else candidates(program, bytes_per_element, include_weights, name)
    total = model_macs(program.graph)
    ends = [check_scratchpad(v) if v != "min" else v for v in (low, high)]  # checked by check_curve
    limits = None
    if any(v in ("M_R", "M_H", "M_P") for v in ends):
        limits = found[0].budgets(0.1 * time_limit)
    sizes = [smallest_footprint(found, max_extra_macs, total).required if v == "min" else
             limits.bytes_of(v) if isinstance(v, str) else v for v in ends]
    if sizes[1] < sizes[0]:
        raise MappingError(f"--curve: {high} ({sizes[1]:,} bytes) is below {low} ({sizes[0]:,} bytes)")
    left = max(1.0, deadline.left())
    return traffic_curve(found, sizes[0], sizes[1], points, time_limit=left,
                         strategy=strategy, objective=objective, max_extra_macs=max_extra_macs, total_macs=total,
                         progress=progress)
