"""Shared by the fitting tests: ``FAST``, fit options that keep a fit of the tiny model short."""

FAST = dict(steps=30, points=256, resolution=32, metrics_points=2000)
