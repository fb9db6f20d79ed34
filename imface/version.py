"""The version of imface (a bottom-layer module, so any layer may read it)."""
__version__ = "0.1.0"
