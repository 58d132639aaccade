"""Datasets that work offline and a small, readable training loop."""
