"""How well a face's shape alone tells its size: the bound the landmark-free scale works against.

A scale error under a shape-only search is the person's size against the mean face unless the
model knows what a bigger head looks like. This measures both sides on a processed dataset with
registered meshes (the built-in data, FaceScape):

- how much the people differ in size (RMS radius of each identity's neutral registered mesh
  about its centroid; spread in % of the mean);
- a linear PCA model of the training identities' registered meshes (k components), fitted to each *test*
  registered mesh with its scale, rotation and translation, the correspondence known (least
  squares, exact for a given rotation): the scale error it recovers, per k.
  k = 0 is the mean face alone: the person's size is the error;
- per k, how far a 2% scale error shows in the shape once the model's components and a rigid
  motion absorb what they can (RMS per vertex, mm): the difference a fit has to resolve to tell
  a 2% bigger head from a bigger person.

With known correspondence and no noise this is a best case, not a fitting method: it says how
much of a person's size their face shape carries in this data.

    python experiments/scale_identifiability.py --data bench_out/processed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.frame import MM_PER_UNIT  # noqa: E402
from imface.baselines.io import load_training_meshes  # noqa: E402
from imface.baselines.pca import principal_components  # noqa: E402
from imface.contracts.dataset import read_manifest  # noqa: E402
from imface.ops.rigid import kabsch  # noqa: E402


def linear_model(mean: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The design matrix of ``s mean + components^T d + t`` (3V, 1 + k + 3) and its thin QR (Q, R):
    mean (V, 3), components (k, 3V) orthonormal rows."""
    design = np.column_stack([mean.ravel(), components.T, np.tile(np.eye(3), (len(mean), 1))])
    q, r = np.linalg.qr(design)
    return design, q, r


def fitted_scale(target: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray], iterations: int = 10) -> float:
    """The scale s of target (V, 3) ~ R (s mean + components^T d) + t, ``model`` from :func:`linear_model`.

    For a fixed rotation the model is linear in (s, d, t) and solved exactly by least squares
    (alternating a similarity and a projection crawls along the valley where a bigger face and a
    bigger scale trade off, and stays wherever it starts); the rotation by Kabsch in between."""
    design, q, r = model
    rotation = np.eye(3)
    for _ in range(iterations):
        solution = np.linalg.solve(r, q.T @ (target @ rotation).ravel())  # the target in the model's axes
        shape = (design[:, :-3] @ solution[:-3]).reshape(-1, 3)
        rotation, _ = kabsch(shape, target)
    return float(solution[0])


def scale_signal_mm(mean: np.ndarray, components: np.ndarray, share: float = 0.02) -> float:
    """RMS (mm) per vertex of what is left of a ``share`` rescale of ``mean`` (V, 3), model units,
    about its centroid, after least squares onto the components (k, 3V) orthonormal rows, three
    shifts and three small rotations about the centroid."""
    centred = mean - mean.mean(axis=0)
    turns = np.stack([np.cross(axis, centred) for axis in np.eye(3)], axis=-1)  # (V, 3, 3)
    basis = np.column_stack([components.T, np.tile(np.eye(3), (len(mean), 1)), turns.reshape(-1, 3)])
    q, _ = np.linalg.qr(basis)
    change = share * centred.ravel()
    left = change - q @ (q.T @ change)
    return float(MM_PER_UNIT * np.sqrt(np.mean(np.sum(left.reshape(-1, 3) ** 2, axis=1))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="processed dataset with registered.ply per scan")
    parser.add_argument("--sizes", default="0,10,20,40,80,160,320", help="PCA sizes k to try")
    args = parser.parse_args()

    # Every scan of the training identities (their held-out expressions too: a shape model that
    # cannot make an expression would read it as a size).
    splits = ["train"] + (["held_out_expression"] if read_manifest(args.data).held_out_expression else [])
    parts = [load_training_meshes(args.data, split) for split in splits]
    test = load_training_meshes(args.data, "test")
    everyone = {}
    for meshes in parts + [test]:
        for vertices, identity, neutral in zip(meshes.vertices, meshes.identities, meshes.neutral):
            if neutral:
                everyone[identity] = float(np.sqrt(np.mean(np.sum((vertices - vertices.mean(axis=0))**2, axis=1))))
    radii = np.array(list(everyone.values()))
    size = 100 * (radii / radii.mean() - 1)
    print(f"people: {len(radii)}; size against the mean: std {size.std():.2f}%, range {size.min():+.1f}% to "
          f"{size.max():+.1f}%; within 2% of the mean: {np.mean(abs(size) <= 2) * 100:.0f}%")
    flat = np.concatenate([m.vertices.reshape(len(m.vertices), -1) for m in parts]).astype(np.float64)
    sizes = [int(k) for k in args.sizes.split(",")]
    mean, components, _, _ = principal_components(flat, max(max(sizes), 1))
    mean = mean.reshape(-1, 3)
    for k in sizes:
        model = linear_model(mean, components[:k])
        errors = np.array([100 * (1 / fitted_scale(v.astype(np.float64), model) - 1) for v in test.vertices])
        print(f"k={k:3d}: {len(errors)} test scans, scale error median |{np.median(abs(errors)):.2f}|%, "
              f"within 2%: {np.mean(abs(errors) <= 2) * 100:.0f}%, range {errors.min():+.2f}% to {errors.max():+.2f}%; "
              f"a 2% scale error shows as {scale_signal_mm(mean, components[:k]):.3f} mm RMS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
