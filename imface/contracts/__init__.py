"""One module per on-disk contract: its file names, reader, writer and format version, nothing else.

- :mod:`imface.contracts.dataset`: a processed dataset (``manifest.json`` and one folder per scan);
- :mod:`imface.contracts.experiment`: a training experiment folder (config, code tables, checkpoints);
- :mod:`imface.contracts.model`: an exported, self-contained model folder;
- :mod:`imface.contracts.fits`: a fits folder (``imface fit`` and ``imface baseline fit``);
- :mod:`imface.contracts.benchmark`: an ``imface benchmark`` folder.
"""
