"""Check a rebuilt model against the shipped model's card (``make model``'s last step).

Reads the held-out figures of ``imface eval`` (``summary.json`` of the rebuilt model's fits of
the held-out ICT identities) and the card's own (``imface/weights/ict/card.json``), prints both,
and exits non-zero when the rebuilt model's mean Chamfer is worse than the card's by more than
the card's tolerance (three standard errors of the card's per-scan mean, at least 0.05 mm).

    python -m bench.model_check --eval model_out/fits/eval/summary.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CARD = Path(__file__).resolve().parents[1] / "imface" / "weights" / "ict" / "card.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, required=True, help="summary.json of imface eval on the rebuilt model's fits")
    parser.add_argument("--card", type=Path, default=CARD, help="the shipped model's card.json")
    args = parser.parse_args(argv)
    try:
        summary = json.loads(args.eval.read_text())
    except (OSError, ValueError) as err:
        print(f"{args.eval}: unreadable eval summary: {err}", file=sys.stderr)
        return 2
    try:
        card = json.loads(args.card.read_text())["heldout_ict"]
    except (OSError, ValueError, KeyError) as err:
        print(f"{args.card}: unreadable model card figures: {err}", file=sys.stderr)
        return 2
    got = float(summary["overall"]["chamfer_mm"]["mean"])
    want, tolerance = float(card["chamfer_mm_mean"]), float(card["tolerance_mm"])
    print(f"held-out ICT Chamfer: rebuilt {got:.3f} mm, card {want:.3f} mm (tolerance +{tolerance:.3f} mm), "
          f"{summary['overall'].get('count', '?')} scans")
    if got > want + tolerance:
        print("the rebuilt model is worse than the card beyond noise", file=sys.stderr)
        return 1
    print("within noise of the card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
