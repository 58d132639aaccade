r"""Branching on stage depths over the Lagrangian bound: depth inside the bound.

The Lagrangian's stage function (:mod:`designer.design.lagrangian`, L3) is linear in a stage's
depth L_j for fixed widths, so its maximiser puts every stage at an end of its depth range and
mixes shallow and deep stages; no choice of multipliers undoes that. Branching does:

(B1) A *box* is a range [lo_j, hi_j] of depths per stage; the boxes in play partition the
     depth space. The Lagrangian bound of the problem restricted to a box
     (``DesignProblem.depth_ranges``) bounds every design in the box, so
       bound = max(incumbent value, max over open boxes of their bound)
     bounds every design; a box whose bound is at most the incumbent's value holds no better
     design and is closed (fathomed).
(B2) Best first: the open box with the largest bound is split at the middle of its widest
     stage range (the later stage on ties: the heavy stages carry the score), and each half's
     bound computed with at most ``EVALUATIONS`` Polyak steps from its parent's multipliers.
     A restriction's Lagrangian is at most its parent's at the same multipliers, so a child's
     first evaluation is already at most the parent's bound; the smaller of the two is kept.
(B3) A box whose ranges are single depths cannot be split: the bound stops improving there.

Every DP maximiser that meets every rule is a design: the best is returned as a candidate.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, replace

from designer.deadline import Deadline
from designer.design.lagrangian import LagrangianBound, lagrangian_bound
from designer.design.problem import DesignProblem
from designer.spec import NetworkSpec

EVALUATIONS = 15  # Polyak steps per box: a child starts from its parent's multipliers

Box = tuple[tuple[int, int], ...]


@dataclass
class BranchedBound:
    """The bound over every open box (B1), how many boxes were opened and closed, and the best
    design the DPs proposed that meets every rule."""

    bound: float
    boxes: int
    closed: int
    evaluations: int
    seconds: float
    feasible: NetworkSpec | None = None
    feasible_value: float | None = None


def _split(box: Box) -> tuple[Box, Box] | None:
    """(B2) the two halves of the widest stage range (the later stage on ties), or None (B3)."""
    widest = max(range(len(box)), key=lambda j: (box[j][1] - box[j][0], j))
    lo, hi = box[widest]
    if lo == hi:
        return None
    mid = (lo + hi) // 2
    return tuple((lo, mid) if j == widest else pair for j, pair in enumerate(box)), \
        tuple((mid + 1, hi) if j == widest else pair for j, pair in enumerate(box))


class DepthBranching:
    """The open boxes of one problem's depth branching; :meth:`run` splits them (a second call
    goes on from where the first stopped)."""

    def __init__(self, problem: DesignProblem, root: LagrangianBound, incumbent: NetworkSpec | None = None):
        self.problem, self.incumbent = problem, incumbent
        box = tuple(problem.stage_depth_bounds(j) for j in range(1, problem.n_stages + 1))
        self.order = itertools.count()
        self.heap = [(-root.bound, next(self.order), box, root.multipliers)]  # open boxes, largest bound first
        self.opened, self.closed, self.evaluations, self.stuck = 1, 0, 0, False
        self.feasible, self.feasible_value = root.feasible, root.feasible_value

    def open(self, target: float) -> bool:
        """Whether splitting can still lower the bound below ``target``'s level."""
        return not self.stuck and bool(self.heap) and -self.heap[0][0] > target

    def run(self, target: float, time_limit: float) -> BranchedBound:
        """Split for at most ``time_limit`` seconds; ``target``: the incumbent's objective value
        (raised as the DPs propose better designs). See the module docstring."""
        deadline = Deadline.starting_now(time_limit)
        while self.open(target) and not deadline.expired():
            parent_bound, _, box, multipliers = heapq.heappop(self.heap)
            halves = _split(box)
            if halves is None:  # (B3) nothing left to split where the bound is largest
                heapq.heappush(self.heap, (parent_bound, next(self.order), box, multipliers))
                self.stuck = True
                break
            for half in halves:
                target = self._bound_half(half, parent_bound, multipliers, target,
                                          deadline.left())
        bound = max([target] + [-item[0] for item in self.heap])
        return BranchedBound(bound, self.opened, self.closed, self.evaluations, deadline.elapsed(),
                             self.feasible, self.feasible_value)

    def _bound_half(self, half: Box, parent_bound: float, multipliers: dict, target: float, left: float) -> float:
        """(B2) one half's bound, kept open when above ``target``; returns the target, raised
        when the half's DP proposed a better design."""
        if left <= 0:  # out of time: the half keeps its parent's bound
            heapq.heappush(self.heap, (parent_bound, next(self.order), half, multipliers))
            return target
        child = lagrangian_bound(replace(self.problem, depth_ranges=list(half)), target=target, time_limit=left,
                                 incumbent=self.incumbent, max_evaluations=EVALUATIONS, multipliers=multipliers)
        self.opened, self.evaluations = self.opened + 1, self.evaluations + child.evaluations
        better = self.feasible_value is None or (child.feasible_value or -math.inf) > self.feasible_value
        if child.feasible_value is not None and better:
            self.feasible, self.feasible_value = child.feasible, child.feasible_value
            target = max(target, child.feasible_value)
        bound = min(child.bound, -parent_bound)  # a restriction's bound is at most its parent's
        if bound > target:
            heapq.heappush(self.heap, (-bound, next(self.order), half, child.multipliers))
        else:
            self.closed += 1
        return target


def depth_branching(problem: DesignProblem, root: LagrangianBound, target: float, time_limit: float,
                    incumbent: NetworkSpec | None = None) -> BranchedBound:
    """Tighten ``root`` (the Lagrangian bound of ``problem``) by branching on stage depths for
    at most ``time_limit`` seconds (:class:`DepthBranching`, run once)."""
    return DepthBranching(problem, root, incumbent).run(target, time_limit)
