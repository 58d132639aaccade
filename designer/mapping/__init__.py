"""Accelerator mapping (COSMA): schedule, scratchpad addresses and spills of a tensor graph."""
