r"""The DeepMAD design problem as a mixed-integer linear program over width *cells*.

Every width range is split into cells [lo, hi] of grid points. Stage j (1..n) picks one
*configuration* q = (out cell, btn cell, k, family) by a binary z_{jq} (the family index ranges
over the problem's families, each with its own btn ratio and kernels), and its depth by an integer
L_{jq} (disaggregated: L_{jq} = 0 unless z_{jq} = 1). The stem picks one width cell (s_v).
Values (log widths) are taken at each cell's ``hi`` and costs at its ``lo``; every cost grows
and every value grows with every width, so the model is a *relaxation* of the space the
cells cover, and *exact* when every cell is a single grid point (then an optimal solution is
optimal for the discrete design problem). :mod:`designer.design.solve` refines cells until
the two meet.

Notation: c_j is stage j's width (c_0 the stem's), w_{jv} = sum of z_{jq} over q with out
cell v (w_{0v} = s_v), lpb(q) the layers per block of q's family, R_{j-1} / r_j the input / output
resolution of stage j, own(q) the log width of a block without its log c_in term
(the family's ``log_width`` at c_in = 1).

(D1) one choice per stage:      sum_q z_{jq} = 1;   sum_v s_v = 1
(D2) depth bounds:              Lmin_j z_{jq} <= L_{jq} <= Lmax_j z_{jq}
(D3) stage log-width sum:       S_j = log c_{j-1} + sum_q [(L_{jq} - z_{jq})(log c(q) + own(q)) + z_{jq} own(q)]
     with log c_{j-1} = sum_v log(hi_v) w_{j-1,v}
(D4) prefix sums:               P_e = log W_stem + sum_{j <= j_e} S_j (+ log c_n for a head conv)
(D5) objective (DeepMAD score): sum_e alpha_e (log r_e P_e + 0.5 log c_e P_e)
     where log c_e P_e = log c_e S_{j_e} + log c_e P_{<j_e}:
       log c_e S_{j_e}: per configuration (exact), plus log c_{j_e} log c_{j_e - 1} = sum_v log(hi_v) Y_{ev},
         sum_v Y_{ev} = sum_q log(hi c(q)) z_{j_e q},  0 <= Y_{ev} <= Ymax w_{j_e - 1, v}
       log c_e P_{<j_e} = sum_v log(hi_v) Q_{ev},  sum_v Q_{ev} = P_{<j_e},  0 <= Q_{ev} <= U_e w_{j_e v}
     (upper-bounding disaggregations: exact at integer points since the objective is maximised)
(D6) costs (compute and size under the problem's counting: MACs and params, or TinyNAS's FLOPs and
     model size; and modelled latency with a profile: :mod:`designer.design.latency`):
                                 stem(c_0) + sum_j sum_q [first(q) z_{jq} + rest(q)(L_{jq} - z_{jq})]
                                 + sum_j sum_v lo_v G_{jv} + head/classifier(c_n)  <= budget
     cross term c_{j-1} g(q) of a stage's first block (cost per input channel):
                                 sum_v G_{jv} = sum_q g(q) z_{jq},  0 <= G_{jv} <= Gmax w_{j-1,v}
(D7) layers:                    Lc = 1 + sum_{jq} lpb(q) L_{jq} (+1 head) <= max_layers
(D8) effectiveness, per stage end e:  P_e >= Lc_e log(Lc_e / rho0), imposed by the secants of
     the convex right side between consecutive Lc_e a step g apart, g the greatest common
     divisor of the families' lpb (every attainable Lc_e is one of them: exact there)
(D9) monotone widths:           sum_v lo_v w_{jv} <= sum_v hi_v w_{j+1,v}
(D10) activation footprint of every layer of a first block, per family f with Z_f = sum of
     z_{jq} over f's configurations: sum_{q in f} foot(q) z_{jq} + slope_f c_{j-1} <= M
     + slope_f cmax (1 - Z_f) (the last term only with several families: off unless f is
     chosen); of the other blocks: configurations over M get L_{jq} <= z_{jq}
(D11) depth spread:             L_i - L_k <= spread  for i, k in the depth-penalty stages
(D12) with objective "penalised", the objective is the score less pen, and
                                 pen >= 10 exp(std(D)) over the depths D of the depth-penalty stages,
     imposed by the tangent planes of the convex 10 exp(std) at the depth vectors in ``tangents``:
     below it everywhere, equal at each tangent point, so the model is a relaxation that is
     exact at the points it has planes for (:mod:`designer.design.solve` adds the planes of
     every solution's depths as it goes).
(R8) inside a cell, a later block's log width is its value at the cell's lo widths plus a gain
     D_{jq} <= (L_{jq} - z_{jq}) (value at hi - value at lo), and the gain is paid for:
     D_{jq} <= rate_MACs(q) FM_{jq} and D_{jq} <= rate_params(q) FP_{jq}, with FM, FP added to
     the MACs and params of (D6). rate(q) bounds log-width gained per extra cost from the lo
     corner (:func:`_gain_rates`); for single-width cells D is zero and the model is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyomo.environ as pyo

from designer.costs import Layer, block_budget, block_layers
from designer.design.posynomial import MONOMIALS, block_posynomial, stem_budget, tail_budget
from designer.design.problem import DesignProblem
from designer.entropy import DEPTH_PENALTY_RATIO
from designer.spec import NetworkSpec


@dataclass(frozen=True)
class Cell:
    """Grid widths lo, lo + step, ..., hi (a single width when lo == hi)."""

    lo: int
    hi: int

    @property
    def is_point(self) -> bool:
        return self.lo == self.hi


@dataclass(frozen=True)
class Config:
    out: Cell
    btn: Cell
    k: int
    family: str = ""  # the block family's name (every configuration of a stage names one)


@dataclass
class Cells:
    """The cells of every choice: stem widths, and per stage out and btn widths."""

    stem: list[Cell]
    out: list[list[Cell]]  # out[j - 1] for stage j
    btn: list[list[Cell]]

    @property
    def exact(self) -> bool:
        return all(c.is_point for group in [self.stem, *self.out, *self.btn] for c in group)


@dataclass
class Choice:
    """What a solution picked: the stem cell and per stage (config, depth)."""

    stem: Cell
    stages: list[tuple[Config, int]]


def _cost(budget: tuple[int, int], layers: list[Layer], latency=None) -> tuple[float, float, float]:
    """(compute, size, modelled milliseconds): the budget costs (under the problem's counting)
    and the latency of ``layers`` (0 without a profile)."""
    return (*budget, latency.layers_ms(layers) if latency is not None else 0.0)


@dataclass
class _StageData:
    configs: list[Config]
    first: list[tuple[int, int]]   # (MACs, params) of the first block without its c_in terms
    slope: list[tuple[int, int]]   # per input channel of the first block
    rest: list[tuple[int, int]]    # one later block
    first_foot: list[list[int]]    # per first-block layer, footprint without c_in
    foot_slope: list[list[int]]    # per first-block layer, footprint per input channel
    rest_over_memory: list[bool]
    own: list[float]               # block log width without log c_in, at hi widths
    lpb: list[int] = field(default_factory=list)  # layers per block
    rest_lo: list[float] = field(default_factory=list)  # a later block's log width at lo widths
    rest_gain: list[float] = field(default_factory=list)  # its increase from lo to hi widths
    rate: list[tuple[float, float]] = field(default_factory=list)  # log width per MAC / per param, at most


def stage_data(problem: DesignProblem, j: int, out_cells: list[Cell], btn_cells: list[Cell]) -> _StageData:
    """Every configuration (out cell, btn cell, k, family) of stage j and its coefficients."""
    data = _StageData([], [], [], [], [], [], [], [])
    res = problem.resolutions()
    where = _Where(res[j - 1], res[j], problem.strides[j], problem.latency_model)  # parsed once per stage
    for blocks in problem.block_families:
        rates = {}  # the gain rates of a (c, b, k) corner, shared by the cells that start there
        for c in out_cells:
            b_min, b_max = problem.btn_bounds(c.lo, blocks)[0], problem.btn_bounds(c.hi, blocks)[1]
            for b in btn_cells:
                if b.hi < b_min or b.lo > b_max:
                    continue
                # the cheapest and the widest btn this cell allows next to some out in the out cell
                lo_b, hi_b = max(b.lo, b_min), min(b.hi, b_max)
                for k in problem.kernels_of(blocks):
                    _add_config(problem, where, data, blocks, c, b, lo_b, hi_b, k, rates)
    return data


@dataclass(frozen=True)
class _Where:
    """What every configuration of one stage shares: its resolutions, stride, latency model."""

    r_in: int
    r_out: int
    stride: int
    latency: object


def _add_config(problem: DesignProblem, where: _Where, data: _StageData, blocks, c: Cell, b: Cell, lo_b: int,
                hi_b: int, k: int, rates: dict) -> None:
    """Append configuration (c, b, k) of ``blocks`` to the stage's data, unless its first block
    alone breaks the activation budget."""
    r_in, r_out, stride, latency = where.r_in, where.r_out, where.stride, where.latency
    bpe, memory = problem.bytes_per_element, problem.max_activation_bytes
    first0, _ = block_layers(blocks, "b", 0, c.lo, lo_b, k, stride, r_in, first=True)
    first1, _ = block_layers(blocks, "b", 1, c.lo, lo_b, k, stride, r_in, first=True)
    rest, _ = block_layers(blocks, "b", c.lo, c.lo, lo_b, k, 1, r_out, first=False)
    feet0 = [layer.activation_bytes(bpe) for layer in first0]
    slopes = [layer1.activation_bytes(bpe) - layer0.activation_bytes(bpe) for layer0, layer1 in zip(first0, first1)]
    if memory is not None and any(f > memory for f, s in zip(feet0, slopes) if s == 0):
        return
    data.configs.append(Config(c, b, k, blocks.name))
    f0 = _cost(block_budget(blocks, 0, c.lo, lo_b, k, stride, r_in, True, problem.counting), first0, latency)
    f1 = _cost(block_budget(blocks, 1, c.lo, lo_b, k, stride, r_in, True, problem.counting), first1, latency)
    data.first.append(f0)
    data.slope.append(tuple(b - a for a, b in zip(f0, f1)))
    data.rest.append(_cost(block_budget(blocks, c.lo, c.lo, lo_b, k, 1, r_out, False, problem.counting), rest,
                           latency))
    data.first_foot.append(feet0)
    data.foot_slope.append(slopes)
    data.rest_over_memory.append(memory is not None and max(layer.activation_bytes(bpe) for layer in rest) > memory)
    data.own.append(blocks.log_width(1, hi_b, k))
    data.lpb.append(blocks.layers_per_block)
    rest_lo = blocks.log_width(c.lo, lo_b, k)
    data.rest_lo.append(rest_lo)
    data.rest_gain.append(math.log(c.hi) + data.own[-1] - rest_lo)
    if (c.lo, lo_b, k) not in rates:
        rates[c.lo, lo_b, k] = _gain_rates(problem, blocks, c.lo, lo_b, k, r_out)
    data.rate.append(rates[c.lo, lo_b, k])


def _gain_rates(problem: DesignProblem, blocks, c: int, b: int, k: int, res: int) -> tuple[float, float]:
    """Upper bounds on (gain in a later block's log width) / (its extra MACs, extra params) for
    widths moving up from (c, b) (R8 of :mod:`designer.design.milp`'s docstring).

    The block's costs are polynomials with non-negative coefficients in (c, b), so along any
    non-negative direction d they grow at least by their gradient at (c, b) times d, while the
    log width (log c + beta log b) grows at most by its gradient; the ratio of the two is at
    most the larger of the two coordinate ratios. Squeeze-excite terms are left out of the
    costs, which can only lower the gradient and so raise these bounds."""
    coefficients = block_posynomial(problem, k, 1, res, first=False, blocks=blocks)  # (monomial, [MACs, params])
    beta = blocks.btn_exponent
    rates = []
    for index in (0, 1):
        d_c = sum(row[index] * (e_in + e_c) * c ** (e_in + e_c - 1) * b ** e_b
                  for (e_in, e_c, e_b), row in zip(MONOMIALS, coefficients) if e_in + e_c > 0)
        d_b = sum(row[index] * e_b * c ** (e_in + e_c) * b ** (e_b - 1)
                  for (e_in, e_c, e_b), row in zip(MONOMIALS, coefficients) if e_b > 0)
        ratios = [(1 / c) / d_c if d_c > 0 else math.inf, (beta / b) / d_b if d_b > 0 else math.inf]
        rates.append(max(ratios))
    return rates[0], rates[1]


def _secants(step: int, lc_min: int, lc_max: int, rho0: float) -> list[tuple[float, float]]:
    """(slope, intercept) of the secants of x log(x / rho0) between layer counts ``step`` apart
    (every attainable count is one of them)."""
    g = lambda x: x * math.log(x / rho0)  # noqa: E731
    points = list(range(lc_min, lc_max + 1, step))
    if len(points) == 1:
        return [(0.0, g(points[0]))]
    cuts = []
    for a, b in zip(points, points[1:]):
        slope = (g(b) - g(a)) / (b - a)
        cuts.append((slope, g(a) - slope * a))
    return cuts


@dataclass
class _Formulation:
    """The model under construction and the expressions every equation group reads."""

    problem: DesignProblem
    cells: Cells
    stages: list[_StageData]
    m: pyo.ConcreteModel
    W: dict[int, list] = field(default_factory=dict)  # W[j][v]: stage j's width lies in its cell v
    S: dict[int, object] = field(default_factory=dict)  # (D3) stage log-width sums
    gain_keys: list[tuple[int, int]] = field(default_factory=list)  # (R8) (stage, configuration)

    @property
    def n(self) -> int:
        return self.problem.n_stages

    def configs(self, j: int) -> range:
        return range(len(self.stages[j - 1].configs))

    def cells_of(self, j: int) -> list[Cell]:
        return self.cells.stem if j == 0 else self.cells.out[j - 1]

    def width(self, j: int, end: str):
        return pyo.quicksum(getattr(cell, end) * self.W[j][v] for v, cell in enumerate(self.cells_of(j)))

    def log_width(self, j: int):
        return pyo.quicksum(math.log(cell.hi) * self.W[j][v] for v, cell in enumerate(self.cells_of(j)))

    def depth(self, j: int):
        return pyo.quicksum(self.m.L[j, q] for q in self.configs(j))

    def rest_value(self, j: int, q: int):
        """Log width of stage j's later blocks under configuration q: at lo widths plus the gain (R8)."""
        gain = self.m.D[j, q] if (j, q) in self.m.D else 0
        return (self.m.L[j, q] - self.m.z[j, q]) * self.stages[j - 1].rest_lo[q] + gain

    @property
    def log_w_stem(self) -> float:
        return math.log(self.problem.in_channels * self.problem.stem_kernel ** 2)

    def prefix(self, j: int):
        """(D4) P: the stem's log width plus the stage sums up to stage j (n + 1: the head)."""
        n = self.n
        return (self.log_w_stem + pyo.quicksum(self.S[i] for i in range(1, min(j, n) + 1))
                + (self.log_width(n) if j == n + 1 else 0))

    def layer_count(self, j: int):
        """(D7) the stem, lpb layers per block up to stage j (n + 1: and the head)."""
        n = self.n
        return 1 + pyo.quicksum(self.stages[i - 1].lpb[q] * self.m.L[i, q] for i in range(1, min(j, n) + 1)
                                for q in self.configs(i)) + (1 if j == n + 1 else 0)

    def disaggregate(self, name: str, total, owner: int, upper: float):
        """Variables X_v in [0, upper] with sum_v X_v = total and X_v <= upper W[owner][v]: the
        product of ``total`` with the owner's cell indicator (exact at integer points)."""
        X = pyo.Var(range(len(self.cells_of(owner))), bounds=(0, upper))
        self.m.add_component(name, X)
        self.m.c.add(pyo.quicksum(X.values()) == total)
        for v in range(len(self.cells_of(owner))):
            self.m.c.add(X[v] <= upper * self.W[owner][v])
        return X


def build_model(problem: DesignProblem, cells: Cells, objective: str = "score",
                tangents: Sequence[tuple[int, ...]] = ()) -> tuple[pyo.ConcreteModel, list]:
    """The MILP over ``cells``; ``objective`` is ``score`` (maximise the problem's objective) or
    one of ``macs``, ``params``, ``layers``, ``activation`` (minimise, used to explain
    infeasibility); ``tangents``: depth vectors of the penalty stages at which (D12) has planes."""
    n = problem.n_stages
    stages = [stage_data(problem, j, cells.out[j - 1], cells.btn[j - 1]) for j in range(1, n + 1)]
    if any(not d.configs for d in stages):
        return None, stages  # a stage with no (out, btn, k) under the activation budget: infeasible
    m = pyo.ConcreteModel(name=problem.name)
    m.stem = pyo.Var(range(len(cells.stem)), domain=pyo.Binary)
    m.z = pyo.Var([(j, q) for j in range(1, n + 1) for q in range(len(stages[j - 1].configs))], domain=pyo.Binary)
    m.L = pyo.Var(m.z.index_set(), domain=pyo.NonNegativeIntegers)
    m.c = pyo.ConstraintList()
    f = _Formulation(problem, cells, stages, m)
    f.W[0] = [m.stem[v] for v in range(len(cells.stem))]
    for j in range(1, n + 1):
        f.W[j] = [pyo.quicksum(m.z[j, q] for q, cfg in enumerate(stages[j - 1].configs) if cfg.out == cell)
                  for cell in cells.out[j - 1]]
    _choices(f)
    _gains(f)
    for j in range(1, n + 1):  # (D3) stage log-width sums
        d = stages[j - 1]
        f.S[j] = f.log_width(j - 1) + pyo.quicksum(f.rest_value(j, q) + m.z[j, q] * d.own[q] for q in f.configs(j))
    score = _score(f)
    cost = _costs(f, objective)
    total_layers = _layers_and_effectiveness(f, objective)
    _shape_rules(f, objective)
    if objective == "score":
        if problem.objective == "penalised":
            score = score - _penalty(f, tangents)
        m.objective = pyo.Objective(expr=score, sense=pyo.maximize)
    elif objective in ("macs", "params", "latency"):
        m.objective = pyo.Objective(expr=cost[objective], sense=pyo.minimize)
    elif objective == "layers":
        m.objective = pyo.Objective(expr=total_layers, sense=pyo.minimize)
    else:
        raise ValueError(f"objective: unknown {objective!r}")
    return m, stages


def _choices(f: _Formulation) -> None:
    """(D1) one choice per stage; (D2) depth bounds; (D10) one block only for configurations
    whose later blocks break the footprint budget."""
    m, quicksum = f.m, pyo.quicksum
    m.c.add(quicksum(m.stem.values()) == 1)
    for j in range(1, f.n + 1):
        m.c.add(quicksum(m.z[j, q] for q in f.configs(j)) == 1)
        lo, hi = f.problem.stage_depth_bounds(j)
        for q in f.configs(j):
            m.c.add(m.L[j, q] >= lo * m.z[j, q])
            m.c.add(m.L[j, q] <= hi * m.z[j, q])
            if f.stages[j - 1].rest_over_memory[q]:
                m.c.add(m.L[j, q] <= m.z[j, q])


def _gains(f: _Formulation) -> None:
    """(R8) a later block's log width inside a cell: its value at lo widths plus a gain D that
    costs at least D / rate extra MACs and params (FM, FP), instead of the free value at hi."""
    m = f.m
    f.gain_keys = [(j, q) for j in range(1, f.n + 1) for q in f.configs(j) if f.stages[j - 1].rest_gain[q] > 1e-12]
    m.D = pyo.Var(f.gain_keys, domain=pyo.NonNegativeReals)
    m.FM = pyo.Var(f.gain_keys, domain=pyo.NonNegativeReals)
    m.FP = pyo.Var(f.gain_keys, domain=pyo.NonNegativeReals)
    for j, q in f.gain_keys:
        d = f.stages[j - 1]
        m.c.add(m.D[j, q] <= d.rest_gain[q] * (m.L[j, q] - m.z[j, q]))
        rate_macs, rate_params = d.rate[q]
        if f.problem.max_macs is not None and math.isfinite(rate_macs):
            m.c.add(m.D[j, q] <= rate_macs * m.FM[j, q])
        if f.problem.max_params is not None and math.isfinite(rate_params):
            m.c.add(m.D[j, q] <= rate_params * m.FP[j, q])


def _score(f: _Formulation):
    """(D5) the DeepMAD score: sum_e alpha_e (log r_e P_e + 0.5 log c_e P_e), the products of
    log widths disaggregated over the cells (Y, Q)."""
    m, quicksum, n, problem = f.m, pyo.quicksum, f.n, f.problem
    terms = []
    for e, ((j_e, r_e), alpha) in enumerate(zip(problem.scoring_ends(), problem.stage_alpha)):
        terms.append(alpha * math.log(r_e) * f.prefix(j_e))
        if j_e == 0:
            terms.append(0.5 * alpha * f.log_w_stem * f.log_width(0))
            continue
        if j_e == n + 1:
            terms.append(0.5 * alpha * math.log(problem.head) * f.prefix(j_e))
            continue
        d = f.stages[j_e - 1]
        # log c_e S_{j_e}: per configuration, plus log c_{j_e} log c_{j_e - 1} through Y
        terms.append(0.5 * alpha * quicksum(math.log(cfg.out.hi) * (f.rest_value(j_e, q) + m.z[j_e, q] * d.own[q])
                                            for q, cfg in enumerate(d.configs)))
        y_max = max(math.log(cfg.out.hi) for cfg in d.configs)
        Y = f.disaggregate(f"Y_{e}", quicksum(math.log(cfg.out.hi) * m.z[j_e, q] for q, cfg in enumerate(d.configs)),
                           j_e - 1, y_max)
        terms.append(0.5 * alpha * quicksum(math.log(cell.hi) * Y[v] for v, cell in enumerate(f.cells_of(j_e - 1))))
        # log c_e P_{<j_e} through Q
        Q = f.disaggregate(f"Q_{e}", f.prefix(j_e - 1), j_e, prefix_bound(problem, f.cells, f.stages, j_e))
        terms.append(0.5 * alpha * quicksum(math.log(cell.hi) * Q[v] for v, cell in enumerate(f.cells_of(j_e))))
    return quicksum(terms)


def _costs(f: _Formulation, objective: str) -> dict[str, object]:
    """(D6) MACs and params: stem, stages (first blocks with their c_in cross terms through G,
    later blocks), head and classifier, and the paid gains (R8); capped by the budgets."""
    m, quicksum, n, problem, cells = f.m, pyo.quicksum, f.n, f.problem, f.cells
    res = problem.resolutions()

    def stem_layer(c: int) -> Layer:
        return Layer("stem", "conv", problem.in_channels, c, problem.stem_kernel, problem.strides[0], 1,
                     problem.resolution, res[0])

    latency = problem.latency_model
    cost = {}
    for index, name in enumerate(("macs", "params", "latency")):
        if name == "latency" and latency is None:
            continue
        total = [quicksum(_cost(stem_budget(problem, cell.lo), [stem_layer(cell.lo)], latency)[index] * m.stem[v]
                          for v, cell in enumerate(cells.stem))]
        for j in range(1, n + 1):
            d = f.stages[j - 1]
            total.append(quicksum(d.first[q][index] * m.z[j, q] + d.rest[q][index] * (m.L[j, q] - m.z[j, q])
                                  for q in f.configs(j)))
            G = f.disaggregate(f"G_{name}_{j}", quicksum(d.slope[q][index] * m.z[j, q] for q in f.configs(j)), j - 1,
                               max(s[index] for s in d.slope))
            total.append(quicksum(cell.lo * G[v] for v, cell in enumerate(f.cells_of(j - 1))))
        total.append(quicksum(_cost(tail_budget(problem, cell.lo), _tail_layers(problem, cell.lo, res[n]),
                                    latency)[index] * f.W[n][v]
                              for v, cell in enumerate(cells.out[n - 1])))
        if name == "latency":
            total.append(latency.constant_ms)  # per network (a profile fitted on whole networks)
        if name != "latency":  # (R8) gains are paid in MACs and params; latency is only bounded below
            total.append(quicksum((m.FM if name == "macs" else m.FP)[key] for key in f.gain_keys))
        cost[name] = quicksum(total)
    if latency is not None:
        m.latency_cost = pyo.Expression(expr=cost["latency"])  # readable after a solve: the modelled latency
    if problem.max_latency_ms is not None and objective != "latency":
        m.c.add(cost["latency"] <= problem.max_latency_ms)
    if problem.max_macs is not None and objective != "macs":
        m.c.add(cost["macs"] <= problem.max_macs)
    if problem.max_params is not None and objective != "params":
        m.c.add(cost["params"] <= problem.max_params)
    return cost


def _layers_and_effectiveness(f: _Formulation, objective: str):
    """(D7) the layer count and its budget; (D8) effectiveness at every stage end, by the
    secants of Lc log(Lc / rho0) between attainable layer counts. Returns the layer count."""
    problem, n = f.problem, f.n
    total_layers = f.layer_count(n + 1 if problem.head is not None else n)
    if problem.max_layers is not None and objective != "layers":
        f.m.c.add(total_layers <= problem.max_layers)
    if problem.effectiveness is not None and objective != "effectiveness":
        # attainable layer counts: 1 (+1 head) plus multiples of the families' common divisor
        step = math.gcd(*{lpb for d in f.stages for lpb in d.lpb})
        for j_e, _ in problem.scoring_ends():
            if j_e == 0:
                continue  # the stem's rho is a constant, checked by the caller
            extra = 1 if j_e == n + 1 else 0
            lc_min = 1 + extra + sum(problem.stage_depth_bounds(i)[0] * min(f.stages[i - 1].lpb)
                                     for i in range(1, min(j_e, n) + 1))
            lc_max = 1 + extra + sum(problem.stage_depth_bounds(i)[1] * max(f.stages[i - 1].lpb)
                                     for i in range(1, min(j_e, n) + 1))
            lc, p = f.layer_count(j_e), f.prefix(j_e)
            for slope, intercept in _secants(step, lc_min, lc_max, problem.effectiveness):
                f.m.c.add(p >= slope * lc + intercept)
    return total_layers


def _shape_rules(f: _Formulation, objective: str) -> None:
    """(D9) monotone widths; (D10) the footprint of the first blocks' layers that read the stage
    input; (D11) the depth spread over the depth-penalty stages."""
    m, problem, quicksum = f.m, f.problem, pyo.quicksum
    if problem.monotone:
        for j in range(1, f.n):
            m.c.add(f.width(j, "lo") <= f.width(j + 1, "hi"))
    memory = problem.max_activation_bytes
    if memory is not None and objective != "activation":
        for j in range(1, f.n + 1):
            d = f.stages[j - 1]
            widest = max(cell.lo for cell in f.cells_of(j - 1))
            for name in dict.fromkeys(cfg.family for cfg in d.configs):  # one row per family and layer
                own = [q for q in f.configs(j) if d.configs[q].family == name]
                chosen = quicksum(m.z[j, q] for q in own)  # 1 when the stage is of this family
                for layer_index, slope in enumerate(d.foot_slope[own[0]]):  # the same for the family's configs
                    if slope:
                        relax = slope * widest * (1 - chosen) if problem.mixed else 0  # off for other families
                        m.c.add(quicksum(d.first_foot[q][layer_index] * m.z[j, q] for q in own)
                                + slope * f.width(j - 1, "lo") <= memory + relax)
    if problem.max_depth_spread is not None:
        chosen = problem.penalty_stages()
        for a in chosen:
            for b in chosen:
                if a != b:
                    m.c.add(f.depth(a) - f.depth(b) <= problem.max_depth_spread)


def penalty_plane(depths: Sequence[int]) -> tuple[float, list[float]]:
    """Value and gradient of 10 exp(std(depths)) (population std) at ``depths``; at equal
    depths (std 0, not differentiable) the zero vector, a valid subgradient there."""
    count = len(depths)
    mean = sum(depths) / count
    std = math.sqrt(sum((d - mean) ** 2 for d in depths) / count)
    value = DEPTH_PENALTY_RATIO * math.exp(std)
    if std == 0:
        return value, [0.0] * count
    return value, [value * (d - mean) / (count * std) for d in depths]


def _penalty(f: _Formulation, tangents: Sequence[tuple[int, ...]]):
    """(D12) pen >= the tangent planes of 10 exp(std) of the penalty stages' depths."""
    m = f.m
    stages = f.problem.penalty_stages()
    m.pen = pyo.Var(bounds=(DEPTH_PENALTY_RATIO, None))  # 10 exp(0): the least penalty
    if len(stages) < 2:
        return m.pen  # one stage: std 0, the penalty is its least value
    for point in dict.fromkeys(tuple(t) for t in tangents):
        value, gradient = penalty_plane(point)
        m.c.add(m.pen >= value + pyo.quicksum(g * (f.depth(j) - d) for g, j, d in zip(gradient, stages, point)))
    return m.pen


def _tail_layers(problem: DesignProblem, channels: int, res: int) -> list[Layer]:
    """Head conv (if any) and classifier after a last stage of ``channels``."""
    layers = []
    if problem.head is not None:
        layers.append(Layer("head", "conv", channels, problem.head, 1, 1, 1, res, res))
        channels = problem.head
    layers.append(Layer("classifier", "linear", channels, problem.num_classes, 1, 1, 1, 1, 1, bias=True,
                        batchnorm=False))
    return layers


def prefix_bound(problem: DesignProblem, cells: Cells, stages: list[_StageData], j: int) -> float:
    """An upper bound on P_{<j}, the log-width sum of the units before stage j."""
    total = math.log(problem.in_channels * problem.stem_kernel ** 2)
    prev_max = max(math.log(c.hi) for c in cells.stem)
    for i in range(1, j):
        d = stages[i - 1]
        _, l_max = problem.stage_depth_bounds(i)
        best = max(own + (l_max - 1) * (math.log(cfg.out.hi) + own) for cfg, own in zip(d.configs, d.own))
        total += prev_max + best
        prev_max = max(math.log(cfg.out.hi) for cfg in d.configs)
    return total


def start_values(model: pyo.ConcreteModel, cells: Cells, stages: list[_StageData],
                 spec: NetworkSpec) -> list[tuple[object, float]] | None:
    """(variable, value) pairs that put ``spec`` into the model (stem, z and L; HiGHS completes
    the continuous rest), for a warm start; None when ``spec`` lies outside the cells."""
    def inside(cell: Cell, width: int) -> bool:
        return cell.lo <= width <= cell.hi

    stem = [v for v, cell in enumerate(cells.stem) if inside(cell, spec.stem.out)]
    if not stem:
        return None
    pairs = [(model.stem[v], float(v == stem[0])) for v in range(len(cells.stem))]
    for j, (d, stage) in enumerate(zip(stages, spec.stages), start=1):
        picked = [q for q, cfg in enumerate(d.configs) if inside(cfg.out, stage.out) and inside(cfg.btn, stage.btn)
                  and cfg.k == stage.k and cfg.family == stage.family]
        if not picked:
            return None
        for q in range(len(d.configs)):
            chosen = q == picked[0]
            pairs += [(model.z[j, q], float(chosen)), (model.L[j, q], float(stage.L if chosen else 0))]
    return pairs


def extract(model: pyo.ConcreteModel, cells: Cells, stages: list[_StageData]) -> Choice:
    """The cells and depths a solved model picked (its variables hold the solution)."""
    stem = max(range(len(cells.stem)), key=lambda v: pyo.value(model.stem[v]))
    picks = []
    for j, d in enumerate(stages, start=1):
        q = max(range(len(d.configs)), key=lambda q: pyo.value(model.z[j, q]))
        picks.append((d.configs[q], int(round(pyo.value(model.L[j, q])))))
    return Choice(stem=cells.stem[stem], stages=picks)
