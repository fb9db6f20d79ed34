"""The train/test split of a preprocessed dataset, chosen before the scans are processed.

The manifest splits by identity and expression (:func:`imface.contracts.dataset.make_split`):
test identities are held out entirely, test expressions are held out of training for the
others. The test identities come from one of:

- ``--test-identities``: a count (chosen by a seeded hash) or names (:func:`choose_test_identities`);
- ``--split-from paper``: the ImFace authors' FaceScape split (:func:`imface.preprocess.facescape.paper_split`):
  only their training and test identities are processed, and the expressions they do not train
  on are the test expressions;
- ``--split-from FILE``: a text file of test identities (one per line, ``#`` comments), or a
  ``.csv`` of scans with ``name`` and ``split`` columns (``train``, ``test``,
  ``held_out_expression`` or ``unused``; scans it does not list are not processed). A CSV must
  split by identity and expression as the manifest does: every scan of a test identity is
  ``test``, and an expression is ``held_out_expression`` for every training identity or none.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from imface.contracts.dataset import SPLIT_LISTS
from imface.errors import ImfaceError
from imface.preprocess.facescape import FaceScapeSplit, paper_split
from imface.preprocess.layouts import ScanSource

#: The ``split`` value of a CSV row whose scan is not processed.
UNUSED = "unused"


def choose_test_identities(identities: list[str], spec: int | list[str] | None, seed: int) -> list[str]:
    """Held-out identities: the given names, or ``spec`` (default ~10%, at least 1 when
    there are >= 2 identities) picked by a seeded hash ranking, so the choice does not
    depend on numpy versions, scan order or sharding."""
    ids = sorted(set(identities))
    if isinstance(spec, (list, tuple)):
        unknown = sorted(set(spec) - set(ids))
        if unknown:
            raise ImfaceError(None, f"--test-identities names unknown identities: {', '.join(unknown[:5])}")
        chosen = sorted(set(spec))
    else:
        count = (max(1, round(0.1 * len(ids))) if len(ids) >= 2 else 0) if spec is None else int(spec)
        if count < 0 or (count and count >= len(ids)):
            raise ImfaceError(None, f"cannot hold out {count} of {len(ids)} identities and still train on one")
        ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}/{i}".encode()).hexdigest())
        chosen = sorted(ranked[:count])
    return chosen


@dataclass(frozen=True)
class SplitPlan:
    """A split given before processing (``--split-from``).

    source: "paper" or the split file (named in messages and the manifest); test_identities:
    identity names; test_expressions: expression names, None to keep ``--test-expressions``;
    identities: the identities to process (None: all); scans: scan name -> its split list, for
    a CSV of scans (only those are processed).
    """

    source: str
    test_identities: tuple[str, ...] = ()
    test_expressions: tuple[str, ...] | None = None
    identities: frozenset[str] | None = None
    scans: dict[str, str] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class AppliedSplit:
    """A plan applied to a dataset's scans: the scans to process, the test identities and
    expressions present, and one line per thing worth telling (missing identities, scans left out)."""

    scans: list[ScanSource]
    test_identities: list[str]
    test_expressions: list[str] | None
    notes: list[str]


def facescape_plan(split: FaceScapeSplit) -> SplitPlan:
    """The plan of a FaceScape split: its identities only, its held-out expressions."""
    return SplitPlan(split.name, tuple(split.test_identities), split.test_expressions,
                     frozenset(split.train_identities) | frozenset(split.test_identities))


def read_split_file(path: str | os.PathLike) -> SplitPlan:
    """A plan from a text file of test identities or a ``.csv`` of scans (module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ImfaceError(path, f"cannot read split file ({type(err).__name__}: {err})") from None
    if path.suffix.lower() != ".csv":
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        identities = tuple(sorted({line for line in lines if line}))
        if not identities:
            raise ImfaceError(path, "split file names no test identities (one identity per line)")
        return SplitPlan(str(path), identities)
    reader = csv.DictReader(text.splitlines())
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if not {"name", "split"} <= set(columns):
        raise ImfaceError(path, "a CSV split file needs 'name' and 'split' columns")
    scans: dict[str, str] = {}
    for row_no, row in enumerate(reader, start=2):
        name, split = (str(row.get(columns[key]) or "").strip() for key in ("name", "split"))
        if split not in (*SPLIT_LISTS, UNUSED):
            raise ImfaceError(path, f"line {row_no}: split {split!r} is not one of {', '.join((*SPLIT_LISTS, UNUSED))}")
        if name in scans:
            raise ImfaceError(path, f"line {row_no}: scan {name!r} is listed twice")
        scans[name] = split
    if not scans:
        raise ImfaceError(path, "split file lists no scans")
    return SplitPlan(str(path), scans=scans)


def resolve_split(spec: str | os.PathLike | None) -> SplitPlan | None:
    """``--split-from``: None, ``paper``, or a split file."""
    if spec is None or str(spec).strip() == "":
        return None
    return facescape_plan(paper_split()) if str(spec).strip() == "paper" else read_split_file(spec)


def _apply_scan_list(plan: SplitPlan, scans: list[ScanSource]) -> AppliedSplit:
    """A CSV plan: its scans, test identities and expressions read off, checked against the manifest's rule."""
    known = {scan.name: scan for scan in scans}
    unknown = sorted(set(plan.scans) - set(known))
    if unknown:
        raise ImfaceError(plan.source, f"names scans the dataset does not have: {', '.join(unknown[:5])}")
    kept = [known[name] for name, split in plan.scans.items() if split != UNUSED]
    test_ids = sorted({s.identity for s in kept if plan.scans[s.name] == "test"})
    held = sorted({s.expression for s in kept if plan.scans[s.name] == "held_out_expression"})
    for scan in kept:
        rule = ("test" if scan.identity in test_ids else
                "held_out_expression" if scan.expression in held else "train")
        if plan.scans[scan.name] != rule:
            raise ImfaceError(plan.source, f"scan {scan.name!r} is '{plan.scans[scan.name]}', but its identity and "
                              f"expression make it '{rule}' (the split goes by identity and expression)")
    left_out = len(scans) - len(kept)
    notes = [f"split {plan.source}: {left_out} of the dataset's {len(scans)} scans are not processed"] if left_out else []
    return AppliedSplit(sorted(kept, key=lambda s: s.name), test_ids, held, notes)


def apply_split(plan: SplitPlan, scans: list[ScanSource]) -> AppliedSplit:
    """The scans ``plan`` keeps and its test identities that the dataset has; refuses a plan that
    leaves no test identity or no training identity."""
    if plan.scans is not None:
        applied = _apply_scan_list(plan, scans)
    else:
        kept = [s for s in scans if plan.identities is None or s.identity in plan.identities]
        present = {s.identity for s in kept}
        test_ids = sorted(set(plan.test_identities) & present)
        notes = []
        missing = sorted(set(plan.test_identities) - present)
        if missing:
            notes.append(f"split {plan.source}: {len(missing)} of its {len(plan.test_identities)} test identities "
                         f"are not in the data ({', '.join(missing[:10])})")
        if plan.identities is not None:
            absent = len(plan.identities - present - set(missing))
            left_out = len(scans) - len(kept)
            if absent:
                notes.append(f"split {plan.source}: {absent} of its training identities are not in the data")
            if left_out:
                notes.append(f"split {plan.source}: {left_out} scans of identities outside the split are not processed")
        applied = AppliedSplit(kept, test_ids, None if plan.test_expressions is None else list(plan.test_expressions),
                               notes)
    if not applied.test_identities:
        raise ImfaceError(plan.source, "none of the split's test identities are in the data (the test split would be "
                          f"empty): {', '.join(plan.test_identities[:10]) or 'none given'}")
    if not {s.identity for s in applied.scans} - set(applied.test_identities):
        raise ImfaceError(plan.source, "the split leaves no training identity in the data")
    return applied
