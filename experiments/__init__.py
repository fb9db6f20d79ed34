"""One-off experiments: the runs behind the findings dated in docs/lab/ (experiments/README.md
says which is which). Each is a script run from the repository root, ``python
experiments/NAME.py ...`` or ``python -m experiments.NAME ...``; shared helpers live in
:mod:`experiments.common`."""
