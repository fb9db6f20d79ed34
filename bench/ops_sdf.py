"""Micro-benchmark of the geometric preprocessing ops on a synthetic face-sized mesh.

Prints wall and CPU seconds per op; asserts nothing. Goal (issue 2): signed_distance
for 250k surface + 15k ball points against a ~100k-triangle mesh in about 1 s on one core.

    python -m bench.ops_sdf --threads 1
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="libigl threads (IGL_NUM_THREADS)")
    parser.add_argument("--vertices", type=int, default=50_000, help="scan vertices (~2x as many triangles)")
    parser.add_argument("--surface", type=int, default=250_000, help="surface samples")
    parser.add_argument("--sphere", type=int, default=15_000, help="samples in the unit ball")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # libigl reads this once, on its first parallel loop: set it before importing it.
    os.environ["IGL_NUM_THREADS"] = str(args.threads)

    import numpy as np

    from imface.ops.crop import crop_to_sphere
    from imface.ops.heightfield import delaunay_heightfield
    from imface.ops.sdf_sampling import sample_in_sphere, sample_surface, signed_distance
    from imface.ops.visibility import remove_hidden_surface

    rng = np.random.default_rng(args.seed)

    def timed(label: str, function, *call_args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*call_args, **kwargs)
        print(f"{label:<44s} wall {time.perf_counter() - wall:7.3f} s   cpu {time.process_time() - cpu:7.3f} s")
        return result

    # A face-like height field in millimetres: a squashed ellipsoid front with a nose,
    # sampled over a disc a little larger than the 100 mm crop sphere.
    radius = 110.0 * np.sqrt(rng.uniform(0.0, 1.0, args.vertices))
    angle = rng.uniform(0.0, 2.0 * np.pi, args.vertices)
    x, y = radius * np.cos(angle), radius * np.sin(angle) * 1.2
    z = 20.0 - 0.004 * (x**2 + 0.6 * y**2) + 25.0 * np.exp(-(x**2 + (y + 5.0) ** 2) / 300.0)
    scan = np.c_[x, y, z]
    faces = delaunay_heightfield(scan)
    print(f"mesh: {len(scan)} vertices, {len(faces)} triangles; threads={args.threads}")

    vertices, faces = timed("crop_to_sphere (r=100 mm)", crop_to_sphere, scan, faces, np.zeros(3), 100.0)
    vertices, faces, _ = timed("remove_hidden_surface (embree)", remove_hidden_surface, vertices, faces)
    faces = timed("delaunay_heightfield", delaunay_heightfield, vertices)
    vertices = vertices / 100.0
    print(f"height field: {len(vertices)} vertices, {len(faces)} triangles (unit sphere)")
    points, _ = timed(f"sample_surface ({args.surface})", sample_surface, vertices, faces, args.surface, rng)
    ball = timed(f"sample_in_sphere ({args.sphere})", sample_in_sphere, args.sphere, rng)
    timed(f"signed_distance surface ({args.surface})", signed_distance, points, vertices, faces)
    timed(f"signed_distance ball ({args.sphere})", signed_distance, ball, vertices, faces)
    timed(
        f"signed_distance all ({args.surface + args.sphere})",
        signed_distance,
        np.concatenate([points, ball]),
        vertices,
        faces,
    )


if __name__ == "__main__":
    main()
