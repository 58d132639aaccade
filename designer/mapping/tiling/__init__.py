"""Patch-based tiling: a plan that splits a prefix of the network into patches (``plan``) and
the search that weighs the candidates and maps the tiled graph (``search``)."""
