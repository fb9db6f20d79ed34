"""Which scans of a processed dataset to fit: a split of the manifest, or scans named in it."""
from __future__ import annotations

from typing import Sequence

from imface.contracts.dataset import SPLIT_LISTS, Manifest
from imface.errors import ImfaceError

#: The split names a fit takes: the manifest's lists, and every scan.
SPLITS = (*SPLIT_LISTS, "all")


def select_scans(manifest: Manifest, split: str = "test", scans: Sequence[str] | None = None) -> list[str]:
    """Scan names to fit: ``scans`` when given (each checked against the manifest), else the
    ``split`` (train | test | held_out_expression in manifest order, or all, sorted by name).

    Raises ImfaceError for an unknown split or scan name, and for an empty selection.
    """
    if split not in SPLITS:
        raise ImfaceError(None, f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if scans:
        names = list(scans)
    else:
        names = sorted(manifest.by_name) if split == "all" else list(getattr(manifest, split))
    unknown = [name for name in names if name not in manifest.by_name]
    if unknown:
        raise ImfaceError(manifest.root, f"no scan(s) named {', '.join(unknown[:3])} in the manifest")
    if not names:
        raise ImfaceError(manifest.root, f"the '{split}' split is empty")
    return names
