"""Lower bounds on a mapping's traffic: forced liveness (``liveness``) and the time-indexed
MILP's relaxation (``milp``)."""
