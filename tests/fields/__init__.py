"""Shared by the field tests: ``SMALL``, the ModelConfig fields of a fast, narrow field."""

SMALL = dict(local_hidden=16, hyper_hidden=16, fusion_hidden=16, positional_frequencies=2, exp_code_dim=8, id_code_dim=8)
