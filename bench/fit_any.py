"""Benchmark: landmark-free fitting of scans as users hand them over (README "Fitting your own scans";
the runs behind its defaults: docs/fitting.md).

From test scans of a processed dataset (held-out identities only), it builds per scan:

- ``mesh``: the scan's mesh with hair, neck and shoulders around it (imface.builtin.perturb),
  holes, and 0.2-1 mm noise, under a random similarity (a named unit times 0.3-3x, a rotation of
  up to 40 degrees, a shift), written as .ply;
- ``cloud``: what one depth camera sees from up to 40 degrees off the front, 2,000-5,000
  points with 0.2-1 mm noise, the same kind of similarity, written as .npy;
- and non-faces: the back of a head, a plane, volume noise.

Then it fits the processed scan (landmark-aligned, no landmark term: the reference), the mesh
and the cloud with ``imface fit --unit auto`` settings, and prints:

- scale error (%) and pose error (degrees) after the fit (``--scale-lr`` > 0: the scale refined
  with the codes; the search's own scale error beside it), and the share within 2% / 2 degrees;
- the Chamfer of the mesh fits (mapped back through the known similarity, then, as ``imface eval``
  does, cropped like the ground truth: :func:`imface.ops.ground_truth_crop.crop_like_ground_truth`) against
  the reference fits' Chamfer (cropped the same way), and both uncropped: a landmark-free fit's
  own crop sphere sits where its pose puts it, so uncropped it keeps a few mm of surface below
  an open jaw that the ground truth's crop cut off;
- the cloud fits' Chamfer on the visible region against the mesh fits' on the same region (each
  fit as the whole-scan Chamfer's ICP aligned it; fit samples counted where the cloud's camera
  sees them and their ray toward it crosses the visible part);
- the people's own size against the training scans' mean face (from their registered meshes,
  when the dataset has them): a search onto the mean face makes that much of a scale error by
  construction, so it shows how much of the scale error is the person's;
- what happened to each non-face (refused with one line, or not);
- seconds per landmark-free fit, pose search included.

Usage (from the repository root):
    python -m bench.fit_any --exp-dir EXP --data DATA --out OUT [--scans 10]
        [--robust MM] [--code-prior W] [--scale-lr LR] [--kinds mesh,cloud,bad]

The reference fits are reused when OUT/reference already holds them (same settings).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.baselines.io import load_training_meshes  # noqa: E402
from imface.config.fit import DEFAULT_FIT_CODE_PRIOR, DEFAULT_FIT_EXP_CODE_PRIOR  # noqa: E402
from imface.benchmark.run import choose_test_scans  # noqa: E402
from imface.builtin import perturb  # noqa: E402
from imface.contracts.dataset import read_manifest  # noqa: E402
from imface.correspondence import registered_face_vertices  # noqa: E402
from imface.errors import ImfaceError  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.io.mesh import read_mesh, write_mesh  # noqa: E402
from imface.ops.ground_truth_crop import crop_like_ground_truth  # noqa: E402
from imface.ops.metrics import evaluate_reconstruction  # noqa: E402
from imface.ops.visibility import visible_vertices  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from tests.ops.meshes import rotation_angle_deg  # noqa: E402


def build_cases(data: Path, scans: list[str], out: Path, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    for scan in scans:
        mesh = read_mesh(data / scan / "mesh.ply")
        name = scan.replace("/", "_")
        sigma = rng.uniform(0.002, 0.01)  # 0.2-1 mm
        faces = perturb.punch_holes(mesh.vertices, mesh.faces, rng, count=3)
        vertices = perturb.add_noise(mesh.vertices, faces, rng, sigma)
        extra = perturb.clutter(rng)
        full_v = np.concatenate([vertices, extra.vertices])
        full_f = np.concatenate([faces, extra.faces + len(vertices)])
        sim = perturb.random_similarity(rng)
        write_mesh(out / "inputs" / f"{name}_mesh.ply", sim.apply(full_v), full_f)
        cases.append({"scan": scan, "kind": "mesh", "input": f"{name}_mesh.ply", "truth": sim.to_dict(),
                      "noise_mm": 100 * sigma})
        count = int(rng.integers(2000, 5001))
        cloud, view = perturb.single_view_cloud(mesh.vertices, mesh.faces, rng, count=count,
                                                sigma=rng.uniform(0.002, 0.01))
        sim = perturb.random_similarity(rng)
        np.save(out / "inputs" / f"{name}_cloud.npy", sim.apply(cloud))
        seen = visible_vertices(mesh.vertices, mesh.faces, view)
        cases.append({"scan": scan, "kind": "cloud", "input": f"{name}_cloud.npy", "truth": sim.to_dict(),
                      "points": len(cloud), "view": view.tolist(), "visible_vertices": np.flatnonzero(seen).tolist()})
    # Non-faces: the back of a head (an ellipsoid's back half, hair bumps), a plane, volume noise.
    sphere = perturb._ellipsoid((0, 0, 0), (80, 100, 95), subdivisions=5)
    back = perturb._keep(sphere, sphere.vertices[:, 2] < 10)
    back.vertices[:, 2] *= -1  # seen from the front: the back faces the camera
    write_mesh(out / "inputs" / "bad_back_of_head.ply", back.vertices, back.faces[:, ::-1])
    grid = np.stack(np.meshgrid(np.linspace(-80, 80, 60), np.linspace(-90, 90, 60)), -1).reshape(-1, 2)
    np.save(out / "inputs" / "bad_plane.npy", np.column_stack([grid, rng.normal(0, 0.2, len(grid))]))
    np.save(out / "inputs" / "bad_noise.npy", rng.uniform(-80, 80, (5000, 3)))
    for bad in ("bad_back_of_head.ply", "bad_plane.npy", "bad_noise.npy"):
        cases.append({"scan": None, "kind": "bad", "input": bad})
    return cases


def score(case: dict, fit_dir: Path, data: Path, points: int) -> dict:
    fit = json.loads((fit_dir / "fit.json").read_text())
    frames = fit["frames"]
    truth = case["truth"]
    rotation, scale = np.asarray(truth["rotation"]), truth["scale"]
    found = frames["alignment"]
    fitted = read_mesh(fit_dir / "mesh_raw.ply")  # in the input's frame and unit
    canonical = (fitted.vertices - np.asarray(truth["translation"])) @ rotation / scale
    gt = read_mesh(data / case["scan"] / "mesh.ply")
    full = evaluate_reconstruction(canonical, fitted.faces, gt.vertices, gt.faces, num_points=points, footprint=False)
    cropped = evaluate_reconstruction(*crop_like_ground_truth(canonical, fitted.faces), gt.vertices, gt.faces,
                                      num_points=points, footprint=False)
    row = {"scale_error_pct": 100 * (found["scale"] * scale - 1),
           "search_scale_error_pct": 100 * (found.get("search_scale", found["scale"]) * scale - 1),
           # input frame (scaled) -> model space is the fitted pose; the truth is R^T
           "pose_error_deg": rotation_angle_deg(np.asarray(frames["pose_rotation"]) @ rotation),
           "unit": found["unit"], "coverage": found["coverage"],
           "chamfer_mm": cropped.chamfer_mm, "chamfer_uncropped_mm": full.chamfer_mm}
    if case["kind"] == "cloud":
        keep = np.zeros(len(gt.vertices), dtype=bool)
        keep[case["visible_vertices"]] = True
        row["visible_faces"] = gt.faces[keep[gt.faces].all(axis=1)]
    # The fit as the whole-scan Chamfer aligned it (ICP onto the whole ground truth), so the
    # visible-region score does not re-align a whole face onto one side of it.
    aligned = canonical @ np.asarray(full.rotation).T + np.asarray(full.translation_mm) / full.mm_per_unit
    row["aligned"] = (aligned, fitted.faces)
    return row


def person_sizes(data: Path, scans: list[str]) -> dict[str, float] | None:
    """Each scan's size against the training scans' mean face, in %: the RMS distance from their
    centroids of its registered mesh's vertices inside the mean's unit sphere, against the
    mean's own. A search onto the mean face makes this much of a scale error by construction
    (a 3% bigger person comes out about 3% small). None without registered meshes."""
    try:
        training = load_training_meshes(data, "train")
    except ImfaceError:
        return None
    mean = training.vertices.mean(axis=0, dtype=np.float64)
    inside = registered_face_vertices(mean)

    def radius(vertices: np.ndarray) -> float:
        part = np.asarray(vertices, dtype=np.float64)[inside]
        return float(np.sqrt(np.mean(np.sum((part - part.mean(axis=0)) ** 2, axis=1))))

    own = radius(mean)
    sizes = {}
    for scan in scans:
        path = data / scan / "registered.ply"
        if not path.is_file():
            return None
        sizes[scan] = 100 * (radius(read_mesh(path).vertices) / own - 1)
    return sizes


def visible_chamfer(recon: tuple[np.ndarray, np.ndarray], gt_vertices: np.ndarray, visible_faces: np.ndarray,
                    view: np.ndarray, points: int) -> float:
    """Chamfer on the part of the ground truth one camera saw: ground-truth samples on the visible
    faces against fit samples that the camera (``view``) sees too and whose ray toward it crosses
    the visible part (the fit's own hidden side would otherwise count); no re-alignment."""
    seen = visible_vertices(recon[0], recon[1], view)
    faces = recon[1][seen[recon[1]].all(axis=1)]
    return evaluate_reconstruction(recon[0], faces, gt_vertices, visible_faces, num_points=points, align="none",
                                   footprint=True, footprint_direction=view).footprint_chamfer_mm


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scans", type=int, default=10)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-points", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (their similarity, clutter, holes, noise)")
    parser.add_argument("--fit-seed", type=int, default=0,
                        help="imface fit --seed of every fit, the reference fits included (which points each step samples)")
    parser.add_argument("--robust", type=float, default=None,
                        help="imface fit --robust (mm) of the landmark-free fits (default: imface fit's; 0: off)")
    parser.add_argument("--code-prior", type=float, default=DEFAULT_FIT_CODE_PRIOR,
                        help="imface fit --code-prior of the landmark-free fits")
    parser.add_argument("--exp-code-prior", type=float, default=DEFAULT_FIT_EXP_CODE_PRIOR,
                        help="imface fit --exp-code-prior of the landmark-free fits")
    parser.add_argument("--scale-lr", type=float, default=0.0, help="imface fit --scale-lr of the landmark-free fits")
    parser.add_argument("--scale-sweep", type=int, default=None, help="imface fit --scale-sweep (default: imface fit's)")
    parser.add_argument("--kinds", default="mesh,cloud,bad", help="which inputs to fit: mesh, cloud, bad (non-faces)")
    return parser.parse_args()


def reference_chamfers(args: argparse.Namespace, scans: list[str], options: dict) -> tuple[dict, dict]:
    """The landmark-aligned fits of the processed scans and their Chamfer (mm) to the ground truth,
    cropped like it and uncropped, per scan."""
    fit(args.exp_dir, args.data, args.out / "reference", split="test", scans=scans, progress=False, **options)
    reference, reference_uncropped = {}, {}
    for scan in scans:
        gt, recon = read_mesh(args.data / scan / "mesh.ply"), read_mesh(args.out / "reference" / scan / "mesh.ply")
        reference[scan] = evaluate_reconstruction(*crop_like_ground_truth(recon.vertices, recon.faces), gt.vertices,
                                                  gt.faces, num_points=args.eval_points, footprint=False).chamfer_mm
        reference_uncropped[scan] = evaluate_reconstruction(recon.vertices, recon.faces, gt.vertices, gt.faces,
                                                            num_points=args.eval_points, footprint=False).chamfer_mm
    return reference, reference_uncropped


def fit_cases(args: argparse.Namespace, cases: list[dict], options: dict, reference: dict) -> tuple[list[dict], list[float]]:
    """Fit every case as ``imface fit --unit auto`` does: one row each (scored, or refused), and the
    seconds of each fit not reused from an earlier run."""
    rows, seconds = [], []
    for case in cases:
        path = args.out / "inputs" / case["input"]
        out = args.out / "fits" / case["kind"]
        started = time.perf_counter()
        try:
            robust = None if args.robust is None else args.robust / 100
            results = fit(args.exp_dir, path, out, unit="auto", progress=False, robust_distance=robust,
                          code_prior=args.code_prior, exp_code_prior=args.exp_code_prior, scale_lr=args.scale_lr,
                          **({} if args.scale_sweep is None else {"scale_sweep": args.scale_sweep}), **options)
        except ImfaceError as err:
            rows.append({**case, "refused": str(err)})
            print(f"{case['input']}: refused: {err}", flush=True)
            continue
        reused = bool(results) and all(r.skipped for r in results)  # a fit from an earlier run: no timing
        if not reused:
            seconds.append(time.perf_counter() - started)
        if case["kind"] == "bad":
            rows.append({**case, "refused": None})
            print(f"{case['input']}: NOT refused", flush=True)
            continue
        rows.append({**case, **score(case, out / path.stem, args.data, args.eval_points)})
        r = rows[-1]
        print(f"{case['input']}: scale {r['scale_error_pct']:+.2f}% (search {r['search_scale_error_pct']:+.2f}%) pose {r['pose_error_deg']:.2f} deg "
              f"({r['unit']}, coverage {100 * r['coverage']:.0f}%) Chamfer {r['chamfer_mm']:.3f} mm "
              f"(reference {reference[case['scan']]:.3f}) "
              + ("reused" if reused else f"{seconds[-1]:.1f} s"), flush=True)
    return rows, seconds


def visible_region_ratios(args: argparse.Namespace, good: list[dict], meshes: dict[str, dict]) -> list[float]:
    """Per cloud whose scan's mesh fit exists: cloud fit / mesh fit Chamfer on the region the cloud's camera saw."""
    partial = []
    for r in good:
        if r["kind"] == "cloud" and r["scan"] in meshes:
            gt = read_mesh(args.data / r["scan"] / "mesh.ply").vertices
            view = np.asarray(r["view"])
            cloud = visible_chamfer(r["aligned"], gt, r["visible_faces"], view, args.eval_points)
            full = visible_chamfer(meshes[r["scan"]]["aligned"], gt, r["visible_faces"], view, args.eval_points)
            partial.append(cloud / full)
            print(f"{r['scan']}: visible-region Chamfer cloud {cloud:.3f} mm, mesh {full:.3f} mm", flush=True)
    return partial


def print_person_sizes(good: list[dict], sizes: dict[str, float]) -> None:
    """The people's own size against the mean face beside the scale errors (adds it to each row)."""
    errors = np.array([r["scale_error_pct"] for r in good])
    size = np.array([sizes[r["scan"]] for r in good])
    for r in good:
        r["person_size_pct"] = sizes[r["scan"]]
    print(f"fit_any: the people's size against the training mean face: |size| median {np.median(abs(size)):.2f}%; "
          f"a scale found as the mean face's would be within 2% on {int(np.sum(abs(size) <= 2))}/{len(size)}; "
          f"correlation of the scale errors with -size {np.corrcoef(errors, -size)[0, 1]:.2f}; "
          f"scale error + size: median {np.median(errors + size):+.2f}%, std {np.std(errors + size):.2f}%")


def main() -> None:
    args = arguments()
    set_threads(args.threads)
    scans = choose_test_scans(read_manifest(args.data), args.scans)
    (args.out / "inputs").mkdir(parents=True, exist_ok=True)
    kinds = set(args.kinds.split(","))
    cases = [c for c in build_cases(args.data, scans, args.out, args.seed) if c["kind"] in kinds]
    options = dict(steps=args.steps, points=1024, landmarks=False, resolution=128, seed=args.fit_seed,
                   metrics_points=0)
    reference, reference_uncropped = reference_chamfers(args, scans, options)
    rows, seconds = fit_cases(args, cases, options, reference)
    good = [r for r in rows if r["kind"] in ("mesh", "cloud") and "scale_error_pct" in r]
    within = [abs(r["scale_error_pct"]) <= 2 and r["pose_error_deg"] <= 2 for r in good]
    searched = [abs(r["search_scale_error_pct"]) <= 2 for r in good]
    meshes = {r["scan"]: r for r in good if r["kind"] == "mesh"}
    ratios = [meshes[s]["chamfer_mm"] / reference[s] for s in meshes]
    uncropped = [meshes[s]["chamfer_uncropped_mm"] / reference_uncropped[s] for s in meshes]
    partial = visible_region_ratios(args, good, meshes)
    refused = [r for r in rows if r["kind"] == "bad" and r.get("refused")]
    failed = [r for r in rows if r["kind"] != "bad" and r.get("refused")]
    print(f"fit_any: scale within 2% and pose within 2 deg: {sum(within)}/{len(within)} "
          f"({100 * np.mean(within):.0f}%; goal >= 95%); the search's scale alone within 2%: {sum(searched)}/{len(searched)}; "
          f"|scale error| median {np.median([abs(r['scale_error_pct']) for r in good]):.2f}%; good inputs refused: {len(failed)}")
    sizes = person_sizes(args.data, scans) if good else None
    if sizes is not None:
        print_person_sizes(good, sizes)
    if ratios:
        print(f"fit_any: mesh fit Chamfer / processed-scan fit (both cropped like the ground truth): median "
              f"{np.median(ratios):.3f}, max {np.max(ratios):.3f}, within 1.10 on {sum(r <= 1.10 for r in ratios)}/"
              f"{len(ratios)} (goal <= 1.10); uncropped: median {np.median(uncropped):.3f}, max {np.max(uncropped):.3f}")
    if partial:
        print(f"fit_any: cloud / mesh Chamfer on the visible region: median {np.median(partial):.3f}, "
              f"max {np.max(partial):.3f} (goal <= 1.25)")
    if "bad" in kinds:
        print(f"fit_any: non-faces refused {len(refused)}/3")
    if seconds:
        print(f"fit_any: {np.mean(seconds):.1f} s per landmark-free fit with the pose and scale search (goal <= 60 s)")
    else:
        print("fit_any: every fit was reused from an earlier run: no timing")
    summary = [{k: v for k, v in r.items() if k not in ("aligned", "visible_faces", "visible_vertices")} for r in rows]
    (args.out / "results.json").write_text(json.dumps({"reference": reference, "reference_uncropped": reference_uncropped,
                                                       "rows": summary}, indent=1))

if __name__ == "__main__":
    main()
