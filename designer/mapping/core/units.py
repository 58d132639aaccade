"""The units the solvers count in, from the graph's own (Checkmate's ``ram_gcd``): sizes in
units of the largest byte count dividing every tensor and the scratchpad, prices in units of
their GCD, and a solver's answer converted back."""

from __future__ import annotations

import math
from functools import reduce

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.objective import Objective
from solvers.result import SolveResult, relative_gap


def gcd_unit(graph: TensorGraph, scratchpad_bytes: int) -> int:
    """The largest byte count dividing every tensor size (the graph's :attr:`byte_unit`,
    computed once) and the scratchpad."""
    return math.gcd(graph.byte_unit, scratchpad_bytes)


def transfer_prices(graph: TensorGraph, objective: Objective) -> tuple[dict[str, int], int]:
    """Each tensor's price per transfer under ``objective``, divided by the GCD of the prices
    (the models' objective coefficients), and that GCD."""
    prices = {name: objective.transfer_cost(graph, name) for name in graph.tensors}
    unit = reduce(math.gcd, prices.values()) or 1
    return {name: price // unit for name, price in prices.items()}, unit


def in_objective_units(result: SolveResult, unit: int) -> SolveResult:
    """HiGHS's objective and bound converted from GCD units back to the objective's unit. The
    cost is a whole number of units (prices times binaries): HiGHS's 3.9999999999999996 is 4
    units, and a bound of 3.2 proves 4."""
    objective = None if result.objective is None else max(0, round(result.objective)) * unit
    bound = None if result.bound is None else max(0, math.ceil(result.bound - 1e-6)) * unit
    return result.replace(objective=objective, bound=bound, gap=relative_gap(objective, bound)
                          if objective is not None and bound is not None else result.gap)
