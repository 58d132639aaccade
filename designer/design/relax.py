r"""A convex relaxation of the design problem for given depths and kernels (cvxpy).

With depths L_j and kernels k_j fixed and widths continuous, write x_j = log c_j (x_0 the
stem) and y_j = log b_j. Then

(R1) costs are posynomials in the widths, so  log sum_t a_t exp(u_t . (x, y)) <= log budget
     is convex (the geometric-program form). Squeeze-excite layers are left out of the costs,
     which only lowers them, keeping the relaxation valid;
(R2) P_e, the log-width sum up to stage end e, is linear in (x, y);
(R3) effectiveness is P_e >= Lc_e log(Lc_e / rho0), linear since Lc_e is fixed;
(R4) monotone widths x_j <= x_{j+1}; btn ratios y_j - x_j in [log r_min, log r_max];
     width ranges are boxes on x and y.

The score sum_e alpha_e (log r_e + x_e / 2) P_e is bilinear, so each end's width is first
bounded: x_e^max = max x_e subject to (R1)-(R4) (one convex solve per end); then
max sum_e alpha_e (log r_e + x_e^max / 2) P_e, a linear objective, bounds the score of every
design with these depths and kernels. Integer widths, the grid and the floor in the SE
width are all relaxed, so the value is an upper bound, never a design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from designer.design.posynomial import MONOMIALS, block_posynomial, stem_budget, tail_budget
from designer.design.problem import DesignProblem
from solvers.extras import require

cp = require("cvxpy", "bench")  # an extra: the relaxation serves the design benchmark


@dataclass
class RelaxationResult:
    status: str
    bound: float | None
    widths: list[float] | None  # continuous stem and stage widths at the optimum
    btn: list[float] | None


def relaxation_bound(problem: DesignProblem, depths: list[int], kernels: list[int]) -> RelaxationResult:
    """Upper bound on the score of every design of ``problem`` with these depths and kernels."""
    if problem.mixed:
        raise ValueError("families: the convex relaxation takes one family (fixed depths and kernels)")
    n = problem.n_stages
    res = problem.resolutions()
    step = problem.width_step
    # btn <= ceil(r_max * out) on the grid: exactly r_max * out when that is a grid point for every
    # grid out (integer r_max); otherwise allow one step more at the narrowest out. The lower
    # ratio bound is dropped (rounding down can undercut it, and narrow btn never raises the score).
    r_max = problem.btn_ratio[1]
    max_ratio = r_max if float(r_max).is_integer() else r_max + step / problem.out_widths[0]
    x = cp.Variable(n + 1)  # log widths, x[0] the stem
    y = cp.Variable(n + 1)  # log btn widths, y[0] unused
    constraints = [x[0] >= math.log(problem.stem_widths[0]), x[0] <= math.log(problem.stem_widths[1]),
                   y[0] == 0]
    for j in range(1, n + 1):
        constraints += [x[j] >= math.log(problem.out_widths[0]), x[j] <= math.log(problem.out_widths[1]),
                        y[j] >= math.log(step), y[j] - x[j] <= math.log(max_ratio)]
        if problem.monotone and j < n:
            constraints.append(x[j] <= x[j + 1])
    # (R1) costs: one exp term per monomial and block kind
    terms: dict[int, list] = {0: [], 1: []}
    for index, value in enumerate(stem_budget(problem, 1)):
        terms[index].append(math.log(value) + x[0])
    for j in range(1, n + 1):
        first = block_posynomial(problem, kernels[j - 1], problem.strides[j], res[j - 1], True)
        rest = block_posynomial(problem, kernels[j - 1], 1, res[j], False)
        for coefficients, count_blocks, c_in in ((first, 1, x[j - 1]), (rest, depths[j - 1] - 1, x[j])):
            if count_blocks == 0:
                continue
            for (e_in, e_c, e_b), row in zip(MONOMIALS, coefficients):
                exponent = e_in * c_in + e_c * x[j] + e_b * y[j]
                for index in (0, 1):
                    if row[index] > 0:
                        terms[index].append(math.log(row[index] * count_blocks) + exponent)
    # head conv and classifier: a part proportional to the last width, and constants
    constants = tail_budget(problem, 0)
    per_channel = [a - b for a, b in zip(tail_budget(problem, 1), constants)]
    for index in (0, 1):
        if per_channel[index] > 0:  # TinyNAS's counting without a head: no tail at all
            terms[index].append(math.log(per_channel[index]) + x[n])
    for index, budget in enumerate((problem.max_macs, problem.max_params)):
        if budget is None:
            continue
        if constants[index] >= budget:
            return RelaxationResult("infeasible", None, None, None)
        constraints.append(cp.log_sum_exp(cp.hstack(terms[index])) <= math.log(budget - constants[index]))
    # (R2) prefix log-width sums and (R3) effectiveness
    log_w_stem = math.log(problem.in_channels * problem.stem_kernel ** 2)
    blocks = problem.blocks
    own = [0.0] + [blocks.log_width(1, 1, kernels[j - 1]) for j in range(1, n + 1)]
    b_exponent = blocks.btn_exponent
    stage_sum = [None] + [x[j - 1] + (depths[j - 1] - 1) * x[j] + depths[j - 1] * (b_exponent * y[j] + own[j])
                          for j in range(1, n + 1)]

    def prefix(j: int):
        total = log_w_stem
        for i in range(1, min(j, n) + 1):
            total = total + stage_sum[i]
        return total + (x[n] if j == n + 1 else 0)

    lpb = problem.layers_per_block
    if problem.max_layers is not None and 1 + lpb * sum(depths) + (problem.head is not None) > problem.max_layers:
        return RelaxationResult("infeasible", None, None, None)
    ends = problem.scoring_ends()
    if problem.effectiveness is not None:
        for j_e, _ in ends:
            if j_e == 0:
                continue
            layers = 1 + lpb * sum(depths[:min(j_e, n)]) + (1 if j_e == n + 1 else 0)
            constraints.append(prefix(j_e) >= layers * math.log(layers / problem.effectiveness))
    # bound each end's width, then the linear objective
    coefficients = []
    for (j_e, r_e), alpha in zip(ends, problem.stage_alpha):
        if j_e == n + 1:
            log_width = math.log(problem.head)
        else:
            width_problem = cp.Problem(cp.Maximize(x[j_e]), constraints)
            width_problem.solve()
            if width_problem.status not in ("optimal", "optimal_inaccurate"):
                return RelaxationResult(width_problem.status, None, None, None)
            log_width = float(x[j_e].value) + 1e-6
        coefficients.append(alpha * (math.log(r_e) + 0.5 * log_width))
    objective = sum(coef * prefix(j_e) for coef, (j_e, _) in zip(coefficients, ends))
    problem_cp = cp.Problem(cp.Maximize(objective), constraints)
    problem_cp.solve()
    if problem_cp.status not in ("optimal", "optimal_inaccurate"):
        return RelaxationResult(problem_cp.status, None, None, None)
    return RelaxationResult(problem_cp.status, float(problem_cp.value) * (1 + 1e-6),
                            [float(math.exp(v)) for v in x.value], [float(math.exp(v)) for v in y.value[1:]])
