r"""A Lagrangian bound on the design problem: a dynamic program over exact grid widths.

The cell MILP (:mod:`designer.design.milp`) bounds the score by relaxing widths into cells,
and its bound only tightens as cells shrink and the MILP grows. This bound keeps every width
on its grid and relaxes the *budgets* instead.

Notation as in :mod:`designer.design.milp`: x_j = log c_j (x_0 the stem), stage j has
(c_j, b_j, k_j, L_j), S_j = x_{j-1} + L_j own(b_j, k_j) + (L_j - 1) x_j its log-width sum
with own(b, k) = beta log b + 2 kc log k, P_e = log W_stem + sum_{i <= j_e} S_i (+ x_n for a
head end), and the score is sum_e coef_e P_e with coef_e = alpha_e (log r_e + x_{j_e} / 2).

(L1) Lagrangian. For multipliers lambda_M, lambda_P >= 0 on the MACs and parameter budgets,
     mu_e >= 0 on the effectiveness of every stage end e, and nu >= 0 on the layer budget,
       L(pi) = max over the space of  score + lambda_M (1 - MACs / B_M) + lambda_P (1 - params / B_P)
               + sum_e mu_e (P_e - t_e(Lc_e)) + nu (max_layers - Lc)
     where t_e is the tangent of g(Lc) = Lc log(Lc / rho0) at a layer count Lc*_e. Every term
     added is >= 0 on a feasible design (g >= t_e since g is convex), so L(pi) >= optimum.
(L2) Suffix weights. sum_e (coef_e + mu_e) P_e = A_0 log W_stem + sum_j A_j S_j (+ A_{n+1} x_n)
     with A_j = sum_{e: j_e >= j} (coef_e + mu_e): stage j's value depends on the later stages
     only through the scalar A_j, and A_j grows by coef_j(x_j) + mu_j at a stage end.
(L3) Stage function, for stage input width c_in, width c and weight A:
       Phi_j(c_in, c, A) = max_{f, b, k, L} A S_j - lambda . cost_j(c_in, c, b, k, L) + tau_j lpb_f L
     over the families f of the space (each with its own btn range, kernels, beta and lpb_f),
     with tau_j the per-layer terms of mu and nu. For fixed (f, k, L) the value is concave
     in b (A L beta log b minus a convex quadratic), so the best grid b is next to the root of
     2 Q2 b^2 + Q1 b = A L beta; for fixed b it is linear in L, so L is Lmin or Lmax.
     Phi_j is a maximum of functions affine in A and in c_in, hence convex in each: it is
     tabulated on a few values of A and c_in, and the chords between them bound it above.
(L4) Backward DP over stages, state (c_{j-1}, A_j) with A_j rounded *up* to a grid of step
     ``resolution`` (S_j >= 0, so rounding A up only raises the value):
       F_{n+1}(c_n, A_{n+1}) = A_{n+1} x_n [head end] - lambda . tail_cost(c_n)
       F_j(c_{j-1}, A_j) = max_{c_j >= c_{j-1} if monotone} Phi_j(c_{j-1}, c_j, A_j)
                                                + F_{j+1}(c_j, A_j - coef_j(c_j) - mu_j)
       L~(pi) = max_{c_0, A_1} A_0 log W_stem - lambda . stem_cost(c_0) + F_1(c_0, A_1) + constants
     L~(pi) >= L(pi) >= optimum for *every* pi >= 0, so every evaluation is a bound.
(L5) Multipliers: Polyak subgradient steps towards the best known design's score, the
     subgradient read from the DP's maximiser (its recounted costs, P_e and layers).

Left out, which only loosens the bound: the activation and latency budgets, the depth spread,
squeeze-excite costs (as in the posynomial costs), the lower btn ratio. The DP's maximiser is
also a design: when it meets every budget it is a candidate incumbent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from designer.costs import count
from designer.design.posynomial import MONOMIALS, block_posynomial, stem_budget, tail_budget
from designer.design.problem import DesignProblem, ceil_to, floor_to
from designer.entropy import DEPTH_PENALTY_RATIO, units
from designer.families import family
from designer.spec import NetworkSpec

NEG = -1e300
CHORD_INPUTS = 24  # input widths Phi is tabulated at (geometric), the chords bound the rest
CHORD_WEIGHTS = 48  # values of A Phi is tabulated at


@dataclass
class LagrangianBound:
    """The smallest L~(pi) found, its multipliers, and the best design the DP proposed."""

    bound: float
    multipliers: dict[str, float]
    evaluations: int
    seconds: float
    design: NetworkSpec | None = None  # the maximiser at the best multipliers (may break budgets)
    history: list[float] = field(default_factory=list)
    feasible: NetworkSpec | None = None  # the best maximiser that meets every rule (a candidate design)
    feasible_value: float | None = None  # its objective value, recounted


_MONOMIAL = {monomial: i for i, monomial in enumerate(MONOMIALS)}


def _in_btn(coef: np.ndarray, c_input, c) -> tuple:
    """A block cost (monomial coefficients, already lambda-weighted) as q2 b^2 + q1 b + q0."""
    q2 = coef[_MONOMIAL[(0, 0, 2)]]
    q1 = coef[_MONOMIAL[(1, 0, 1)]] * c_input + coef[_MONOMIAL[(0, 1, 1)]] * c + coef[_MONOMIAL[(0, 0, 1)]]
    q0 = (coef[_MONOMIAL[(1, 1, 0)]] * c_input * c + coef[_MONOMIAL[(0, 1, 0)]] * c + coef[_MONOMIAL[(0, 0, 0)]]
          + coef[_MONOMIAL[(1, 0, 0)]] * c_input)
    return q2, q1, q0


def _grid(lo: float, hi: float, step: int) -> np.ndarray:
    return np.arange(ceil_to(lo, step), floor_to(hi, step) + 1, step, dtype=float)


def _chord_nodes(count: int, points: int) -> np.ndarray:
    """Indices 0..count-1, geometric in spirit: ``points`` of them including both ends."""
    if count <= points:
        return np.arange(count)
    nodes = np.unique(np.round(np.geomspace(1, count, points)).astype(int) - 1)
    return nodes


def _lerp_weights(values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value, the lower node index and the weight of the upper node (linear interpolation)."""
    upper = np.clip(np.searchsorted(nodes, values, side="left"), 1, len(nodes) - 1)
    lower = upper - 1
    span = nodes[upper] - nodes[lower]
    weight = np.where(span > 0, (values - nodes[lower]) / np.where(span > 0, span, 1), 0.0)
    return lower, np.clip(weight, 0.0, 1.0)


class _Space:
    """Everything of the problem the DP reads that does not depend on the multipliers."""

    def __init__(self, problem: DesignProblem):
        self.problem = p = problem
        self.n = n = p.n_stages
        step = p.width_step
        self.widths = _grid(*p.out_widths, step)
        self.stem_widths = _grid(*p.stem_widths, step)
        self.log_widths, self.log_stem = np.log(self.widths), np.log(self.stem_widths)
        # per (family, kernel) of the space: the stage function maximises over both (L3)
        self.families = p.block_families
        self.choices = [(blocks, k) for blocks in self.families for k in p.kernels_of(blocks)]
        bounds = {b.name: np.array([p.btn_bounds(int(c), b) for c in self.widths], float) for b in self.families}
        self.btn_lo = {name: pairs[:, 0] for name, pairs in bounds.items()}
        self.btn_hi = {name: pairs[:, 1] for name, pairs in bounds.items()}
        self.own = {(blocks.name, k): blocks.log_width(1, 1, k) for blocks, k in self.choices}
        res = p.resolutions()
        self.first = [{(blocks.name, k): block_posynomial(p, k, p.strides[j], res[j - 1], True, blocks)
                       for blocks, k in self.choices} for j in range(1, n + 1)]
        self.rest = [{(blocks.name, k): block_posynomial(p, k, 1, res[j], False, blocks)
                      for blocks, k in self.choices} for j in range(1, n + 1)]
        self.stem_cost = np.array(stem_budget(p, 1), float)  # per stem channel
        self.tail_const = np.array(tail_budget(p, 0), float)
        self.tail_slope = np.array(tail_budget(p, 1), float) - self.tail_const
        self.log_w_stem = math.log(p.in_channels * p.stem_kernel ** 2)
        self.ends = p.scoring_ends()
        self.alpha = p.stage_alpha
        self.budgets = np.array([p.max_macs or 0.0, p.max_params or 0.0])
        self.active = np.array([p.max_macs is not None, p.max_params is not None])

    def end_of(self, j: int) -> int | None:
        """Index e of the scoring end at stage j (0 = stem, n + 1 = head), or None."""
        return next((e for e, (j_e, _) in enumerate(self.ends) if j_e == j), None)

    def coef(self, e: int, log_width) -> np.ndarray:
        j_e, r_e = self.ends[e]
        return self.alpha[e] * (math.log(r_e) + 0.5 * log_width)


@dataclass
class _Multipliers:
    cost: np.ndarray  # (lambda_M, lambda_P), per unit of budget
    mu: dict[int, float]  # effectiveness, per end index e with j_e >= 1
    nu: float  # layer budget

    def vector(self) -> np.ndarray:
        return np.concatenate([self.cost, [self.mu[e] for e in sorted(self.mu)], [self.nu]])

    @classmethod
    def from_vector(cls, v: np.ndarray, ends: list[int]) -> _Multipliers:
        return cls(v[:2].copy(), {e: float(v[2 + i]) for i, e in enumerate(ends)}, float(v[-1]))


class _Evaluator:
    def __init__(self, space: _Space, resolution: float, tangent_layers: dict[int, float]):
        self.s = space
        self.delta = resolution
        self.tangent = tangent_layers  # Lc*_e per effectiveness end
        p = space.problem
        self.rho0 = p.effectiveness

    # ---- (L1) the per-block layer terms and the constant -------------------------------
    def _layer_terms(self, pi: _Multipliers) -> tuple[np.ndarray, float]:
        s, p = self.s, self.s.problem
        tau = np.zeros(s.n + 1)  # tau[j] per layer of a block of stage j
        constant = float(np.sum(pi.cost * s.active))
        for e, mu in pi.mu.items():
            j_e = s.ends[e][0]
            lstar = self.tangent[e]
            g, slope = _tangent(lstar, self.rho0)
            extra = 1 if j_e == s.n + 1 else 0
            tau[1:min(j_e, s.n) + 1] -= mu * slope
            constant -= mu * (g + slope * (1 + extra - lstar))
        if p.max_layers is not None:
            tau[1:] -= pi.nu
            constant += pi.nu * (p.max_layers - 1 - (1 if p.head is not None else 0))
        return tau, constant

    def _weights(self, pi: _Multipliers) -> np.ndarray:
        """lambda per unit of MACs and of params."""
        return np.where(self.s.active, pi.cost / np.where(self.s.budgets > 0, self.s.budgets, 1), 0.0)

    # ---- (L3) the stage function --------------------------------------------------------
    def stage_table(self, j: int, c_in: np.ndarray, A: np.ndarray, w: np.ndarray, tau: float,
                    argmax: bool = False):
        """Phi_j at every (input width c_in, width, weight A) without the A x_in term: an array
        of shape (len(c_in), n_widths, len(A)); with ``argmax`` also the maximising (b, k, L,
        family index) there (only the trace needs them; the DP's tables do not)."""
        s, p = self.s, self.s.problem
        lo, hi = p.stage_depth_bounds(j)
        c = s.widths[None, :, None]
        x = s.log_widths[None, :, None]
        a = A[None, None, :]
        best = np.full((len(c_in), len(s.widths), len(A)), NEG)
        arg_b, arg_k, arg_L, arg_f = (np.zeros_like(best) for _ in range(4)) if argmax else (None,) * 4
        step = p.width_step
        for blocks, k in s.choices:
            b_lo, b_hi = s.btn_lo[blocks.name][None, :, None], s.btn_hi[blocks.name][None, :, None]
            beta, lpb, index = blocks.btn_exponent, blocks.layers_per_block, s.families.index(blocks)
            f2, f1, f0 = _in_btn(s.first[j - 1][blocks.name, k] @ w, c_in[:, None, None], c)  # lambda-weighted
            r2, r1, r0 = _in_btn(s.rest[j - 1][blocks.name, k] @ w, c, c)
            for L in sorted({lo, hi}):
                Q2, Q1, Q0 = f2 + (L - 1) * r2, f1 + (L - 1) * r1, f0 + (L - 1) * r0
                gain = a * L * beta  # derivative of A L beta log b is gain / b
                with np.errstate(divide="ignore", invalid="ignore"):
                    root = np.where(Q2 > 0, (-Q1 + np.sqrt(Q1 * Q1 + 8 * Q2 * gain)) / (4 * np.where(Q2 > 0, Q2, 1)),
                                    np.where(Q1 > 0, gain / np.where(Q1 > 0, Q1, 1), np.inf))
                below = np.clip(np.floor(np.minimum(root, 1e9) / step) * step, b_lo, b_hi)
                for b in (below, np.clip(below + step, b_lo, b_hi)):
                    value = (a * (L * (beta * np.log(b) + s.own[blocks.name, k]) + (L - 1) * x)
                             - (Q2 * b * b + Q1 * b + Q0) + tau * lpb * L)
                    if argmax:
                        better = value > best
                        arg_b, arg_k, arg_L, arg_f = (np.where(better, b, arg_b), np.where(better, k, arg_k),
                                                      np.where(better, L, arg_L), np.where(better, index, arg_f))
                    best = np.maximum(best, value)
        return (best, arg_b, arg_k, arg_L, arg_f) if argmax else best

    # ---- (L4) the DP ---------------------------------------------------------------------
    def evaluate(self, pi: _Multipliers) -> tuple[float, NetworkSpec]:
        """L~(pi) and the design the DP picks there."""
        s, p, delta = self.s, self.s.problem, self.delta
        n = s.n
        w = self._weights(pi)
        tau, constant = self._layer_terms(pi)
        mu_end = {s.ends[e][0]: mu for e, mu in pi.mu.items()}
        coef_max = [s.coef(e, s.log_widths[-1] if j_e <= n else math.log(p.head)) + mu_end.get(j_e, 0.0)
                    for e, (j_e, _) in enumerate(s.ends) if j_e >= 1]
        size = int(math.ceil(sum(coef_max) / delta)) + n + 3  # the A grid: 0, delta, ..., A_max rounded up
        # F_{n+1}(c_n, t): only the head's weight
        head_e = s.end_of(n + 1)
        F = np.full((len(s.widths), size), NEG)
        if head_e is not None:
            head_coef = float(s.coef(head_e, math.log(p.head))) + pi.mu.get(head_e, 0.0)
            F[:, int(math.ceil(head_coef / delta - 1e-12))] = head_coef * s.log_widths
        else:
            F[:, 0] = 0.0
        F -= np.where(F > NEG / 2, ((s.tail_slope @ w) * s.widths + s.tail_const @ w)[:, None], 0.0)
        stages = []
        for j in range(n, 0, -1):
            stage = self._stage(j, F, pi, w, tau[j], mu_end.get(j, 0.0), size)
            stages.append(stage)
            F = stage["F"]
        # the stem: A_0 = A_1 + coef_0(x_0), and its cost
        stem_e = s.end_of(0)
        A = np.arange(size) * delta
        A0 = A[None, :] + (s.coef(stem_e, s.log_stem)[:, None] if stem_e is not None else 0.0)
        total = np.where(F > NEG / 2, F + A0 * s.log_w_stem - ((s.stem_cost @ w) * s.stem_widths)[:, None], NEG)
        c0, t1 = divmod(int(np.argmax(total)), size)
        return float(total[c0, t1]) + constant, self._trace(stages[::-1], c0, t1, w, tau, pi)

    def _stage(self, j: int, future: np.ndarray, pi: _Multipliers, w: np.ndarray, tau: float, mu: float,
               size: int) -> dict:
        """F_j from F_{j+1} (``future``). Phi_j is tabulated at input-width nodes; between two
        nodes the chord bounds Phi_j, and the best c_j is taken at each node apart (the max of
        a sum is at most the sum of the maxes), with c_j >= the lower node when monotone."""
        s, p, delta = self.s, self.s.problem, self.delta
        c_in = s.stem_widths if j == 1 else s.widths
        x_in = s.log_stem if j == 1 else s.log_widths
        nodes = np.arange(len(c_in)) if j == 1 else _chord_nodes(len(c_in), CHORD_INPUTS)
        monotone = p.monotone and j > 1
        reach = np.nonzero(future.max(axis=0) > NEG / 2)[0]
        e = s.end_of(j)
        shift = (np.ceil((s.coef(e, s.log_widths) + mu) / delta - 1e-12).astype(int)
                 if e is not None else np.zeros(len(s.widths), int))
        t_lo, t_hi = reach.min() + shift.min(), min(size - 1, reach.max() + shift.max())
        a_nodes = np.linspace(t_lo * delta, t_hi * delta, CHORD_WEIGHTS) if t_hi > t_lo else np.array([t_lo * delta])
        table = self.stage_table(j, c_in[nodes], a_nodes, w, tau)  # (nodes, widths, a_nodes)
        ts = np.arange(t_lo, t_hi + 1)
        if len(a_nodes) > 1:
            lower_a, weight_a = _lerp_weights(ts * delta, a_nodes)
            upper_a = np.minimum(lower_a + 1, len(a_nodes) - 1)
        else:
            lower_a, weight_a, upper_a = np.zeros(len(ts), int), np.zeros(len(ts)), np.zeros(len(ts), int)
        node_widths = c_in[nodes]
        prev_widths = np.concatenate([[node_widths[0]], node_widths[:-1]])
        own = np.full((len(nodes), len(ts)), NEG)  # best over c_j >= the node's own width
        prev = np.full((len(nodes), len(ts)), NEG)  # best over c_j >= the node before it
        for cj in range(len(s.widths)):
            t_from = ts - shift[cj]
            ok = (t_from >= 0) & (t_from < size)
            ahead = np.where(ok, future[cj, np.clip(t_from, 0, size - 1)], NEG)
            if ahead.max() <= NEG / 2:
                continue
            col = table[:, cj, :]
            candidate = col[:, lower_a] * (1 - weight_a) + col[:, upper_a] * weight_a + ahead[None, :]
            if monotone:
                width = s.widths[cj]
                np.maximum(own, np.where((node_widths <= width)[:, None], candidate, NEG), out=own)
                np.maximum(prev, np.where((prev_widths <= width)[:, None], candidate, NEG), out=prev)
            else:
                np.maximum(own, candidate, out=own)
        if not monotone:
            prev = own
        # every input width: the chord between its two nodes
        lower_c, weight_c = _lerp_weights(c_in, node_widths)
        upper_c = np.minimum(lower_c + 1, len(nodes) - 1)
        exact = node_widths[lower_c] == c_in  # a node itself: its own value
        left = own[lower_c]
        right = np.where(exact[:, None], own[lower_c], prev[upper_c])
        wc = np.where(exact, 0.0, weight_c)[:, None]
        valid = (left > NEG / 2) & ((right > NEG / 2) | (wc == 0))
        value = np.where(valid, (1 - wc) * left + wc * np.where(right > NEG / 2, right, 0.0), NEG)
        F = np.full((len(c_in), size), NEG)
        F[:, t_lo:t_hi + 1] = np.where(value > NEG / 2, value + (ts * delta)[None, :] * x_in[:, None], NEG)
        return {"F": F, "future": future, "table": table, "nodes": nodes, "a_nodes": a_nodes, "shift": shift,
                "t_lo": t_lo}

    def _trace(self, stages: list[dict], c0: int, t1: int, w: np.ndarray, tau: np.ndarray,
               pi: _Multipliers) -> NetworkSpec:
        """The maximiser: at each stage the best c_j for the traced input width (by its chord),
        then (b, k, L) re-optimised exactly at the traced stage weights."""
        s, p, delta = self.s, self.s.problem, self.delta
        widths, t, width_in = [], t1, float(s.stem_widths[c0])
        for j, stage in enumerate(stages, start=1):
            c_in = s.stem_widths if j == 1 else s.widths
            node_widths = c_in[stage["nodes"]]
            lower, weight = _lerp_weights(np.array([width_in]), node_widths)
            lower, weight = int(lower[0]), float(weight[0])
            upper = min(lower + 1, len(node_widths) - 1)
            a_nodes = stage["a_nodes"]
            la, wa = _lerp_weights(np.array([t * delta]), a_nodes) if len(a_nodes) > 1 else (np.array([0]), np.zeros(1))
            la, wa = int(la[0]), float(wa[0])
            ua = min(la + 1, len(a_nodes) - 1)
            table = stage["table"]
            phi = ((1 - weight) * (table[lower, :, la] * (1 - wa) + table[lower, :, ua] * wa)
                   + weight * (table[upper, :, la] * (1 - wa) + table[upper, :, ua] * wa))
            t_from = t - stage["shift"]
            ok = (t_from >= 0) & (t_from < stage["future"].shape[1])
            ahead = np.where(ok, stage["future"][np.arange(len(s.widths)), np.clip(t_from, 0, stage["future"].shape[1] - 1)],
                             NEG)
            total = np.where(ahead > NEG / 2, phi + ahead, NEG)
            if p.monotone and j > 1:
                total = np.where(s.widths >= width_in, total, NEG)
            cj = int(np.argmax(total))
            widths.append(cj)
            t, width_in = t - int(stage["shift"][cj]), float(s.widths[cj])
        # the exact stage weights A_j of the traced widths, then the best (b, k, L) per stage
        n = s.n
        coef = [0.0] * (n + 2)
        for e, (j_e, _) in enumerate(s.ends):
            if j_e == 0:
                continue
            log_c = math.log(p.head) if j_e == n + 1 else s.log_widths[widths[j_e - 1]]
            coef[j_e] = float(s.coef(e, log_c)) + pi.mu.get(e, 0.0)
        result, c_prev = [], np.array([s.stem_widths[c0]])
        A_suffix = np.cumsum(coef[::-1])[::-1]
        for j, cj in enumerate(widths, start=1):
            _, arg_b, arg_k, arg_L, arg_f = self.stage_table(j, c_prev, np.array([A_suffix[j]]), w, tau[j], argmax=True)
            result.append((int(s.widths[cj]), int(arg_b[0, cj, 0]), int(arg_k[0, cj, 0]), int(arg_L[0, cj, 0]),
                           s.families[int(arg_f[0, cj, 0])].name))
            c_prev = np.array([s.widths[cj]])
        return p.to_spec(int(s.stem_widths[c0]), result)


def _tangent(layers: float, rho0: float) -> tuple[float, float]:
    """Value and slope of g(Lc) = Lc log(Lc / rho0) at ``layers`` (the effectiveness tangent)."""
    return layers * math.log(layers / rho0), math.log(layers / rho0) + 1


def _subgradient(space: _Space, design: NetworkSpec, tangent: dict[int, float]) -> np.ndarray:
    """The subgradient of L~ at the DP's maximiser, from one recount: budget slacks (per unit of
    budget), effectiveness slacks P_e - t_e(Lc_e) per priced end, the layer slack."""
    p = space.problem
    (compute, size), us = count(design).budget(space.problem.counting), units(design)
    sub = [1 - compute / space.budgets[0] if space.active[0] else 0.0,
           1 - size / space.budgets[1] if space.active[1] else 0.0]
    for e, lstar in tangent.items():
        j_e = space.ends[e][0]
        upto = 1 + sum(st.L for st in design.stages[:min(j_e, space.n)])  # stem + blocks
        head = j_e == space.n + 1
        prefix = sum(u.log_width for u in us[:upto]) + (us[-1].log_width if head else 0.0)
        lc = sum(u.layers for u in us[:upto]) + (1 if head else 0)
        value, slope = _tangent(lstar, p.effectiveness)
        sub.append(prefix - (value + slope * (lc - lstar)))
    sub.append(p.max_layers - sum(u.layers for u in us) if p.max_layers is not None else 0.0)
    return np.array(sub)


def lagrangian_bound(problem: DesignProblem, target: float, time_limit: float = 20.0, resolution: float = 0.02,
                     incumbent: NetworkSpec | None = None, max_evaluations: int = 200,
                     multipliers: dict[str, float] | None = None) -> LagrangianBound:
    """Minimise L~(pi) over the multipliers by Polyak steps towards ``target`` (the best known
    design's objective value); every evaluation is an upper bound on the optimum, the smallest
    is returned. For objective "penalised" the bound is the score's less the least depth
    penalty (10), which every design pays. ``multipliers``: where the steps start (another
    bound's ``multipliers``: the depth branching starts a box from its parent's)."""
    start = time.perf_counter()
    offset = DEPTH_PENALTY_RATIO if problem.objective == "penalised" else 0.0
    target = target + offset  # on the score's scale
    space = _Space(problem)
    eff_ends = [e for e, (j_e, _) in enumerate(space.ends) if j_e >= 1] if problem.effectiveness is not None else []
    tangent = {}
    for e in eff_ends:
        j_e = space.ends[e][0]
        if incumbent is not None:  # any tangent point gives a bound; the incumbent's layer count a close one
            layers = sum(family(st.family).layers_per_block * st.L for st in incumbent.stages[:min(j_e, space.n)])
        else:
            depth = sum(problem.stage_depth_bounds(i)[1] for i in range(1, min(j_e, space.n) + 1)) // 2
            layers = problem.layers_per_block * max(depth, 1)
        tangent[e] = 1 + layers + (1 if j_e == space.n + 1 else 0)
    evaluator = _Evaluator(space, resolution, tangent)
    scale = abs(target) if target else 1.0
    pi = _Multipliers(np.where(space.active, 0.1 * scale, 0.0), {e: 0.0 for e in eff_ends}, 0.0)
    if multipliers is not None:  # a warm start: another bound's (LagrangianBound.multipliers)
        pi = _Multipliers(np.array([multipliers["lambda_macs"], multipliers["lambda_params"]]),
                          {e: multipliers.get(f"mu_{e}", 0.0) for e in eff_ends}, multipliers.get("nu", 0.0))
    best, best_pi, best_design, history = math.inf, pi, None, []
    theta, stall = 1.0, 0
    feasible, feasible_value = None, None
    evaluations = 0
    while evaluations == 0 or (evaluations < max_evaluations and time.perf_counter() - start < time_limit):
        value, design = evaluator.evaluate(pi)
        evaluations += 1
        design_value, broken = problem.evaluate(design)
        if not broken and (feasible_value is None or design_value > feasible_value):
            feasible, feasible_value = design, design_value
        history.append(value)
        if value < best - 1e-9 * abs(best if math.isfinite(best) else 1):
            best, best_pi, best_design, stall = value, pi, design, 0
            theta = min(2.0, theta * 1.5)  # steps that improve may grow
        else:
            stall += 1
            if stall >= 2:
                theta, stall = theta / 2, 0
        if best - target <= 1e-9 * abs(target) or theta < 1e-4:
            break
        g = _subgradient(space, design, tangent)
        # diagonal scaling: the budget multipliers live on the score's scale, the effectiveness
        # ones on the scale of a stage weight A (score / prefix length)
        scaling = np.concatenate([[scale, scale], [scale / 300.0] * len(eff_ends), [scale / 300.0]])
        norm = float(g @ (scaling * g))
        if norm <= 1e-18:
            break
        step = theta * max(value - target, 1e-6 * scale) / norm
        pi = _Multipliers.from_vector(np.maximum(0.0, pi.vector() - step * scaling * g), eff_ends)
    return LagrangianBound(best - offset, {"lambda_macs": float(best_pi.cost[0]), "lambda_params": float(best_pi.cost[1]),
                                  **{f"mu_{e}": v for e, v in best_pi.mu.items()}, "nu": best_pi.nu},
                           evaluations, time.perf_counter() - start, best_design, [h - offset for h in history],
                           feasible, feasible_value)
