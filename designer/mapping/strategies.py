"""Every way of mapping a graph, behind one signature and one registry.

    strategy(graph, scratchpad_bytes, time_limit, *, objective=OFFCHIP_BYTES, **options) -> MappingOutcome

A strategy returns the mapping it found (or None) and its own :class:`~solvers.SolveResult`:
status, objective (in the objective's unit), bound, gap and seconds exactly as the method
reported them. The CLI, sweeps, benchmarks and the pipeline call strategies by name through
:func:`get`, and :mod:`designer.mapping.solve` combines them (baselines, a bound, a solver).

=========  ====================================================================  ==========
name       what                                                                   bound?
=========  ====================================================================  ==========
baseline   the best of the eviction x placement heuristics on one order          no
cpsat      the CP-SAT model with addresses (:mod:`designer.mapping.cpsat`)        yes
ilp        COSMA's ILP with addresses on HiGHS (:mod:`designer.mapping.ilp`)      yes
divide     CP-SAT window by window (:mod:`designer.mapping.divide`)               no
keep       keep-or-spill MILP for an order, laid out (:mod:`.keep`)               fixed order
windows    CP-SAT window by window from a mapping, its order kept (:mod:`.ordercp`) no
bound      the address-free MILP: a lower bound, no mapping (:mod:`.milp`)        yes
liveness   the forced-liveness knapsack: a lower bound, no mapping (:mod:`.liveness`)  yes
=========  ====================================================================  ==========
"""

from __future__ import annotations

from collections.abc import Callable

from designer.mapping.baselines import solve_baseline
from designer.mapping.cpsat import solve_mapping
from designer.mapping.divide import divide_and_conquer
from designer.mapping.ilp import solve_ilp
from designer.mapping.io import MappingOutcome
from designer.mapping.keep import keep_plan
from designer.mapping.liveness import liveness_bound
from designer.mapping.milp import lower_bound
from designer.mapping.ordercp import window_search

Strategy = Callable[..., MappingOutcome]

STRATEGIES: dict[str, Strategy] = {
    "baseline": solve_baseline,
    "cpsat": solve_mapping,
    "ilp": solve_ilp,
    "divide": divide_and_conquer,
    "keep": keep_plan,
    "windows": window_search,
    "bound": lower_bound,
    "liveness": liveness_bound,
}


def get(name: str) -> Strategy:
    """The strategy called ``name``, or a ValueError listing them."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name]


__all__ = ["MappingOutcome", "STRATEGIES", "Strategy", "get"]
