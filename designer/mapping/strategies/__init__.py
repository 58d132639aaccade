"""The mapping strategies a user chooses by name (``map --strategy NAME``), and what each accepts.

Every strategy is a plain function of one signature, in a module of its own:

    strategy(graph, scratchpad_bytes, time_limit, *, objective=OFFCHIP_BYTES, **options) -> MappingOutcome

returning the mapping it found (or None) and its own :class:`~solvers.SolveResult` (status,
objective in the objective's unit, bound, gap, seconds) exactly as the method reported them.
:mod:`designer.mapping.stages` always runs the baselines and the bounds first and hands the
named strategy the rest of the time, starting from the best mapping so far. Each is a
:class:`Strategy` in :data:`STRATEGIES`: its function (imported when it runs, so OR-Tools and
pyomo load only then), what it accepts, and which of the search's stages run before it (its
*stage policy*), so the search names no strategy. A new strategy is two files' work: its module
and its :func:`register_strategy` entry (``tests/test_mapping_plans.py`` registers one).

==========  ===============================================================  ======  ========  =====
name        what                                                             bound   order     dram
==========  ===============================================================  ======  ========  =====
cpsat       CP-SAT over the whole graph: schedule, addresses, spills          yes     free/given yes
            (:mod:`.cpsat`); the default
ilp         COSMA's ILP with addresses on HiGHS (:mod:`.ilp`)                  yes     free/given no
divide      CP-SAT window by window along the min-peak order (:mod:`.divide`)  no      free      no
windows     CP-SAT a window of steps at a time from the best plan, its order   no      free      yes
            kept (:mod:`.windows`)
keep        the keep-or-spill MILP of an order, laid out (:mod:`.keep`)        given   free/given yes
baseline    the best eviction x placement heuristic (:mod:`.baselines`)        no      free/given yes
==========  ===============================================================  ======  ========  =====

*order*: ``free`` lets the strategy choose the schedule; ``given`` keeps the graph's order (the
paper's fixed-schedule mode). *dram*: whether it minimises ``--objective dram`` (the ILP and
divide model inputs and weights as re-read for free). Two bounds run beside every strategy and
are not strategies themselves: the forced-liveness knapsack and the
address-free time-indexed MILP (:mod:`designer.mapping.bounds`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Start:
    """What a whole-graph strategy may start from: the problem, the best mapping so far (a
    hint) and the best bound proven so far."""

    problem: Any
    hint: Any
    bound: float | None


def _no_options(start: Start) -> dict:
    return {}


@dataclass(frozen=True)
class Strategy:
    """A strategy as the search runs it. ``function``: the strategy (or ``"module:function"``,
    imported when it runs); ``options(start)``: its keyword arguments beyond the common ones
    (objective, threads). The stage policy: ``keep`` and ``windows`` say whether the
    keep-or-spill plan and the window search run before it (``"share"``: with their share of the
    time; ``"all"``: the strategy *is* that stage, with all of it; ``"skip"``), ``bound`` whether
    the address-free MILP bound does; ``outcome`` which result is the strategy's own: ``"run"``
    (the function, last, with the time left, from the best mapping so far), ``"keep"``,
    ``"windows"`` or ``"baseline"``."""

    name: str
    what: str
    given_order: bool  # accepts order="given" (or an explicit schedule)
    dram: bool  # minimises the dram objective
    function: Callable | str | None = None
    options: Callable[[Start], dict] = field(default=_no_options)
    keep: str = "share"
    windows: str = "share"
    bound: bool = False
    outcome: str = "run"

    def __post_init__(self) -> None:
        for name, value, allowed in (("keep", self.keep, STAGE_USES), ("windows", self.windows, STAGE_USES),
                                     ("outcome", self.outcome, OUTCOMES)):
            if value not in allowed:
                raise ValueError(f"strategy {self.name!r}: {name} must be one of {', '.join(allowed)}, got {value!r}")
        if (self.outcome == "run") != (self.function is not None):
            raise ValueError(f"strategy {self.name!r}: a function exactly when its outcome is 'run'")

    def run(self, graph, scratchpad_bytes: int, time_limit: float, start: Start, **common):
        """The strategy's :class:`~designer.mapping.core.io.MappingOutcome`."""
        function = self.function
        if isinstance(function, str):
            module, _, name = function.partition(":")
            function = getattr(importlib.import_module(module), name)
        return function(graph, scratchpad_bytes, time_limit, **common, **self.options(start))


STAGE_USES = ("share", "all", "skip")
OUTCOMES = ("run", "keep", "windows", "baseline")
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to :data:`STRATEGIES`; a name already there is refused (torchvision's
    model registry does the same), so no strategy replaces another by accident."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"strategy {strategy.name!r} is registered already")
    STRATEGIES[strategy.name] = strategy
    return strategy


def _cpsat_options(start: Start) -> dict:
    problem = start.problem
    return dict(max_reloads=problem.max_reloads, hint=start.hint, order=problem.fixed_order, known_bound=start.bound)


def _ilp_options(start: Start) -> dict:
    return dict(order=start.problem.fixed_order)


def _divide_options(start: Start) -> dict:
    problem = start.problem
    return dict(window=problem.window, seconds_per_window=problem.seconds_per_window,
                max_reloads=problem.max_reloads, order=problem.min_peak_order)


for _strategy in (
    Strategy("cpsat", "CP-SAT over the whole graph: schedule, addresses, spills (the default)", True, True,
             "designer.mapping.strategies.cpsat:solve_mapping", _cpsat_options, bound=True),
    Strategy("ilp", "COSMA's ILP with addresses on HiGHS", True, False, "designer.mapping.strategies.ilp:solve_ilp",
             _ilp_options),
    Strategy("divide", "CP-SAT window by window along the min-peak order (large graphs)", False, False,
             "designer.mapping.strategies.divide:divide_and_conquer", _divide_options),
    Strategy("windows", "CP-SAT a window of steps at a time from the best plan, its order kept", False, True,
             windows="all", outcome="windows"),
    Strategy("keep", "the keep-or-spill MILP of an order, laid out", True, True, keep="all", windows="skip",
             outcome="keep"),
    Strategy("baseline", "the best eviction x placement heuristic", True, True, keep="skip", windows="skip",
             outcome="baseline"),
):
    register_strategy(_strategy)

ORDERS = ("free", "given")



def check_strategy(name: str, order: str | list[str], objective_name: str, option: str = "strategy") -> None:
    """``name`` is a strategy that accepts the order and the objective; a ValueError naming the
    option (and the strategies that would) otherwise."""
    if name not in STRATEGIES:
        raise ValueError(f"{option}: must be one of {', '.join(STRATEGIES)}, got {name!r}")
    info = STRATEGIES[name]
    if order != "free" and not info.given_order:
        able = ", ".join(n for n, i in STRATEGIES.items() if i.given_order)
        raise ValueError(f"{option}: {name} chooses its own order; a given order needs one of {able}")
    if objective_name == "dram" and not info.dram:
        able = ", ".join(n for n, i in STRATEGIES.items() if i.dram)
        raise ValueError(f"{option}: {name} models inputs and weights as re-read for free, so it cannot minimise "
                         f"the dram objective; use one of {able}")
