"""The mapping strategies a user chooses by name (``map --strategy NAME``), and what each accepts.

Every strategy is a plain function of one signature, imported directly where it is used
(:mod:`designer.mapping.stages`):

    strategy(graph, scratchpad_bytes, time_limit, *, objective=OFFCHIP_BYTES, **options) -> MappingOutcome

returning the mapping it found (or None) and its own :class:`~solvers.SolveResult` (status,
objective in the objective's unit, bound, gap, seconds) exactly as the method reported them.
:mod:`designer.mapping.stages` always runs the baselines and the bounds first and hands the
named strategy the rest of the time, starting from the best mapping so far.

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
are not strategies themselves: the forced-liveness knapsack (:mod:`.liveness`) and the
address-free time-indexed MILP (:mod:`.bound`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StrategyInfo:
    what: str
    given_order: bool  # accepts order="given" (or an explicit schedule)
    dram: bool  # minimises the dram objective


STRATEGIES: dict[str, StrategyInfo] = {
    "cpsat": StrategyInfo("CP-SAT over the whole graph: schedule, addresses, spills (the default)", True, True),
    "ilp": StrategyInfo("COSMA's ILP with addresses on HiGHS", True, False),
    "divide": StrategyInfo("CP-SAT window by window along the min-peak order (large graphs)", False, False),
    "windows": StrategyInfo("CP-SAT a window of steps at a time from the best plan, its order kept", False, True),
    "keep": StrategyInfo("the keep-or-spill MILP of an order, laid out", True, True),
    "baseline": StrategyInfo("the best eviction x placement heuristic", True, True),
}

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
