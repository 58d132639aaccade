"""The mapping wing's core: the tensor graph (its units and budgets computed once on it), the
objectives, a mapping and its file, the simulator that replays it, its picture. Needs neither
OR-Tools nor pyomo nor torch: reading a mapping file and replaying it work without them."""
