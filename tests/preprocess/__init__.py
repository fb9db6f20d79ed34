"""Shared by the preprocessing tests: ``SMALL``, sample counts that keep a scan fast."""

SMALL = dict(surface_samples=4000, space_samples=3000, near_surface_samples=2000)
