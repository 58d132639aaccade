"""Divide and conquer for graphs too large for one solve (NAS cells, 1000-node graphs).

COSMA's heuristic is not public; ours is a rolling horizon over a global order:

1. **Order.** A global schedule: the greedy minimum-peak order (list scheduling that keeps
   live bytes low). It decides which operators are solved together, not their final order.
2. **Window.** The next ``window`` operators not yet committed are solved by the CP-SAT model
   (:func:`designer.mapping.strategies.cpsat.solve_mapping`), started from the Belady baseline continued
   over them (a complete hint), free to reorder them, with boundary
   conditions carried from the committed steps: a tensor resident when the window starts
   keeps its address while it stays; a tensor only in host must be retrieved (its bytes
   count); a tensor needed after the window ends resident at its last step or with a host copy.
3. **Commit at a narrow cut.** Only the window's first steps are kept, up to the point in
   its second half where the fewest bytes are live across the cut; the rest of the window
   goes back to the front of the queue. The solver has planned past the commit point, so
   the state it leaves can be continued (the next window may replay those very steps).
4. **Yardstick and fallback.** The Belady baseline, continued from the committed state, is
   planned for the same steps; it is committed instead when CP-SAT found nothing in time or
   moves more bytes over the steps it would commit. Addresses of carried tensors cannot move,
   so a committed layout can be a dead end (no placement of the next window exists); then the
   last commit taken from CP-SAT is undone and the baseline committed there instead.
5. **Stitch.** The committed steps form one mapping; the simulator replays it.

What it gives up: no reordering beyond a window, and each window minimises its own traffic,
not what it leaves behind.
"""

from __future__ import annotations

from collections.abc import Callable

from designer.deadline import Deadline
from designer.mapping.strategies.baselines import PlacementError, greedy_min_peak_order, plan
from designer.mapping.strategies.cpsat import solve_mapping
from designer.mapping.core.graph import Operator, Tensor, TensorGraph
from designer.mapping.core.io import Mapping, MappingOutcome, Step
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from solvers.result import SolveResult, Status

MAX_BACKTRACKS = 50  # dead ends undone before giving up
MIN_WINDOW_SECONDS = 1.0  # what a window still gets past the deadline when no baseline can place it


def divide_and_conquer(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
                       objective: Objective = OFFCHIP_BYTES, window: int = 40, seconds_per_window: float = 10.0,
                       max_reloads: int = 2, order: list[str] | None = None, threads: int = 1,
                       progress: Callable[[str], None] | None = None) -> MappingOutcome:
    """Map ``graph`` window by window (see the module docstring). Each window's CP-SAT solve
    gets at most ``seconds_per_window`` and what is left of ``time_limit``; once that is spent
    the continued baseline commits the rest (CP-SAT only where the baseline cannot place)."""
    deadline = Deadline.starting_now(time_limit)

    def cost(steps: list[Step]) -> int:
        return objective.of_steps(graph, steps)

    queue = list(order or greedy_min_peak_order(graph))
    total = len(queue)
    committed: list[Step] = []
    resident: dict[str, int] = {}
    hosted: set[str] = set()
    solves = fallbacks = backtracks = 0
    # the state before each commit taken from a CP-SAT window, to go back to when a later
    # window finds the layout it left a dead end (addresses of carried tensors cannot move)
    history: list[tuple[int, list[str], dict[str, int], set[str]]] = []
    use_baseline = False
    while queue:
        state = (len(committed), list(queue), dict(resident), set(hosted))
        ops = queue[:window]
        # "needed after the window" means by an operator still in the queue beyond it
        later = {op: i for i, op in enumerate(queue)}
        # the Belady baseline carried on from the same state: the window's starting mapping,
        # the fallback, and a yardstick
        try:
            continued = plan(graph, queue, scratchpad_bytes, "belady", resident=resident, hosted=hosted,
                             steps=len(ops), objective=objective)
        except PlacementError:  # the committed layout leaves the placement rules no room: CP-SAT must
            continued = None
        remaining = deadline.left()
        mapping, status = None, "baseline after a dead end" if use_baseline else "baseline, time limit reached"
        if continued is None or (not use_baseline and remaining > 0.05):
            hint = continued or Mapping(scratchpad_bytes, [Step(op) for op in ops])
            seconds = max(min(seconds_per_window, remaining), MIN_WINDOW_SECONDS if continued is None else 0.05)
            mapping, status = _solve_window(graph, ops, len(ops), later, resident, hosted, scratchpad_bytes,
                                            seconds, max_reloads, hint, objective, threads)
            solves += 1
        use_baseline = False
        if mapping is None and continued is None:
            if not history or backtracks >= MAX_BACKTRACKS:
                raise PlacementError(f"divide and conquer: after {len(committed)} operators neither CP-SAT "
                                     f"({status}) nor the baseline can place the next window")
            size, queue, resident, hosted = history.pop()
            del committed[size:]
            use_baseline, backtracks = True, backtracks + 1
            continue
        keep = len(ops) if mapping is None or len(ops) == len(queue) else _narrow_point(graph, mapping)
        if mapping is not None and (continued is None or cost(mapping.steps[:keep]) <= cost(continued.steps[:keep])):
            kept = mapping.steps[:keep]
            queue = [step.op for step in mapping.steps[keep:]] + queue[len(ops):]
            history.append(state)
        else:  # not solved in time, or worse than the baseline over the same number of steps
            kept = continued.steps[:keep]
            queue = queue[keep:]
            fallbacks += 1
            status = f"{status}, baseline used"
        committed.extend(kept)
        for step in kept:
            hosted.update(step.spilled)
        resident = {n: a for n, a in kept[-1].resident.items() if graph.tensors[n].producer is not None}
        if progress is not None:
            progress(f"{len(committed)}/{total} operators mapped ({status}), "
                     f"{deadline.elapsed():.0f} s")
    method = (f"divide and conquer ({solves} windows of <= {window}, {fallbacks} finished by the baseline, "
              f"{backtracks} backtracks)")
    mapping = Mapping(scratchpad_bytes, committed, method=method)
    return MappingOutcome(mapping, SolveResult(Status.FEASIBLE, objective=cost(committed),
                                               seconds=deadline.elapsed(), solver="cp-sat windows",
                                               message=method))


def _narrow_point(graph: TensorGraph, mapping: Mapping) -> int:
    """How many of a window's steps to commit: the cut in its second half with the fewest
    produced bytes resident across it."""
    steps = mapping.steps
    half = max(1, len(steps) // 2)

    def crossing(k: int) -> int:  # bytes resident both at step k - 1 and step k
        before, after = steps[k - 1].resident, steps[k].resident
        return sum(graph.tensors[n].bytes for n in before if n in after and graph.tensors[n].producer is not None)

    return min(range(half, len(steps)), key=lambda k: (crossing(k), -k))


def _solve_window(graph: TensorGraph, ops: list[str], end: int, position: dict[str, int], resident: dict[str, int],
                  hosted: set[str], scratchpad_bytes: int, seconds: float, max_reloads: int, hint: Mapping,
                  objective: Objective, threads: int = 1):
    inside = set(ops)
    tensors, entering = {}, {}
    for op in ops:
        for name in graph.operators[op].inputs + graph.operators[op].outputs:
            tensor = graph.tensors[name]
            tensors[name] = Tensor(name, tensor.bytes, tensor.producer if tensor.producer in inside else None)
            if tensor.producer is not None and tensor.producer not in inside:
                entering[name] = resident.get(name)
    for name, address in resident.items():  # resident tensors needed only after this window
        if name not in tensors and any(position.get(c, -1) >= end for c in graph.consumers[name]):
            tensors[name] = Tensor(name, graph.tensors[name].bytes, None)
            entering[name] = address
    leaving = {name for name in tensors
               if graph.tensors[name].producer is not None and any(position.get(c, -1) >= end for c in graph.consumers[name])}
    sub = TensorGraph([Operator(op, list(graph.operators[op].inputs), list(graph.operators[op].outputs))
                       for op in ops], list(tensors.values()), f"{graph.name}[window]")
    kwargs = dict(entering=entering, hosted=hosted & set(tensors), leaving=leaving, max_reloads=max_reloads,
                  objective=objective, threads=threads)
    outcome = solve_mapping(sub, scratchpad_bytes, seconds, hint=hint, **kwargs)
    if outcome.mapping is None and outcome.result.status != Status.INFEASIBLE:
        # out of time: keep the global order, an easier problem
        outcome = solve_mapping(sub, scratchpad_bytes, seconds, order=ops, **kwargs)
    return outcome.mapping, outcome.result.status
