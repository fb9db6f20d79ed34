"""What the fit's non-face check measures (``imface.fitting.face_check.surface_shape``) on a
processed face, the same with scanner noise, half of it (one view), a plane and uniform noise,
beside the limits it refuses at.

    python experiments/face_check.py --mesh demo_out/processed/003/2_smile/mesh.ply
"""
from __future__ import annotations

import argparse

import numpy as np
from imface.fitting.face_check import MAX_LOCAL_THICKNESS, MIN_RELATIVE_DEPTH, surface_shape
from imface.io.mesh import read_mesh
from imface.ops.sdf_sampling import sample_surface


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", required=True, help="a processed face mesh (model units)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mesh = read_mesh(args.mesh)
    face, _ = sample_surface(mesh.vertices, mesh.faces, 20_000, rng)
    cases = {
        "face": face,
        "face + 1 mm noise": face + rng.normal(0, 0.01, face.shape),
        "face + 2 mm noise": face + rng.normal(0, 0.02, face.shape),
        "half a face (one view)": face[face[:, 0] > 0],
        "plane": np.c_[rng.uniform(-1, 1, (20_000, 2)), np.zeros(20_000)],
        "uniform noise": rng.uniform(-1, 1, (20_000, 3)),
    }
    print(f"refused when relative depth < {MIN_RELATIVE_DEPTH} or local thickness > {MAX_LOCAL_THICKNESS}")
    for name, points in cases.items():
        depth, thickness = surface_shape(points)
        refused = depth < MIN_RELATIVE_DEPTH or thickness > MAX_LOCAL_THICKNESS
        print(f"{name:24s} relative depth {depth:.3f}  local thickness {thickness:.3f}  {'refused' if refused else 'accepted'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
