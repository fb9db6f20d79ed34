"""The benchmark's Fig. 4 analog: ground truth, ImFace and the baselines on held-out scans."""
from __future__ import annotations

from pathlib import Path

from imface.benchmark.methods import baseline_names
from imface.config.benchmark import BenchmarkConfig
from imface.contracts.benchmark import BenchmarkFolder
from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.contracts.dataset import read_manifest
from imface.contracts.fits import MESH_NAME as FIT_MESH_NAME
from imface.errors import ImfaceError
from imface.io.mesh import read_mesh
from imface.ops.colors import error_colors
from imface.ops.contact_sheet import contact_sheet, save_png
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.metrics import surface_distance_mm
from imface.ops.render import render_mesh

#: Heatmap range of the error columns, mm (0 blue ... this value and above red).
ERROR_RANGE_MM = 3.0
CELL = (176, 176)


def figure_methods(config: BenchmarkConfig, bench_dir: Path) -> list[tuple[str, Path, str]]:
    """The methods shown (label, reconstruction folder, file name): the full model and the
    i3DMM-like variant (first seed) when run, the largest PCA, the bilinear and FLAME-like models."""
    folder, seed = BenchmarkFolder(bench_dir), config.seeds[0]
    shown = [("ImFace" if v == "full" else v, folder.imface_fits(v, seed), FIT_MESH_NAME)
             for v in ("full", "i3dmm-like") if v in config.variants]
    if not shown:
        shown.append((config.variants[0], folder.imface_fits(config.variants[0], seed), FIT_MESH_NAME))
    baselines = baseline_names(bench_dir)
    pca = sorted((int(e["latent_size"]), n) for n, e in baselines.items() if n.startswith("pca"))
    names = ([pca[-1][1]] if pca else []) + [n for n in ("bilinear", "flame_like") if n in baselines]
    shown += [(name, folder.baseline_fits(name), FIT_MESH_NAME) for name in names]
    return shown


def write_fig4(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str], png: Path) -> Path:
    """One row per scan: the ground truth, then per method its reconstruction (cropped like the
    ground truth, as scored) and the same coloured by its distance to the ground truth
    (0 - ERROR_RANGE_MM mm, before the evaluation's ICP). Missing reconstructions stay blank."""

    manifest = read_manifest(data_dir)
    shown = figure_methods(config, bench_dir)
    rows, labels = [], []
    for scan in scans:
        truth = read_mesh(manifest.folder(scan) / SCAN_MESH_NAME)
        frame = truth.vertices
        row = [render_mesh(truth.vertices, truth.faces, size=CELL, fit_to=frame)]
        for _, folder, file_name in shown:
            try:
                mesh = read_mesh(folder / scan / file_name)
                vertices, faces = crop_like_ground_truth(mesh.vertices, mesh.faces)
            except (ImfaceError, ValueError):
                row += [None, None]
                continue
            errors = surface_distance_mm(vertices, truth.vertices, truth.faces)
            row.append(render_mesh(vertices, faces, size=CELL, fit_to=frame))
            row.append(render_mesh(vertices, faces, vertex_colors=error_colors(errors, ERROR_RANGE_MM), light="unlit",
                                   size=CELL, fit_to=frame))
        rows.append(row)
        scan_info = manifest.scan(scan)
        held = " (unseen expr.)" if scan_info.expression in manifest.test_expressions else ""
        labels.append(f"{scan}{held}")
    columns = ["ground truth"] + [text for label, _, _ in shown for text in (label, f"{label}: error\n0-{ERROR_RANGE_MM:g} mm")]
    save_png(png, contact_sheet(rows, row_labels=labels, col_labels=columns,
                                title="Held-out identities: ground truth, ImFace and baselines (cropped as scored)"))
    return png

