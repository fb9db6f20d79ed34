"""Fit previews: a picture per scan and a sheet per folder, for processed scans and point sets;
the evaluation sheet and the demo's figure from the same folder; pictures asked for later refit."""
from __future__ import annotations

import numpy as np
from PIL import Image

from imface.eval.evaluate import write_eval_sheet
from imface.demo import write_fit_grid
from imface.eval.evaluate import evaluate_folder
from imface.fitting.run import fit
from tests.fitting import FAST


def test_preview_pictures_for_meshes_and_point_sets(tiny, tmp_path, monkeypatch):
    data_dir, exp_dir, loaded = tiny
    np.save(tmp_path / "cloud.npy", np.load(data_dir / "004/2_smile/surface_points.npy")[:3000])
    out = tmp_path / "fits"
    fit(loaded, data_dir, out, scans=["001/1_neutral"], preview=True, **FAST)
    fit(loaded, tmp_path / "cloud.npy", out, neutral="no", preview=True, **FAST)
    for name in ("001/1_neutral", "cloud"):
        image = np.asarray(Image.open(out / name / "preview.png").convert("RGB"))
        assert image.shape[1] > 6 * 200 and image.shape[0] > 200  # one row of 6 cells (3 per view)
        assert (image < 200).any(axis=2).mean() > 0.05  # something was drawn, not a blank sheet
    sheet = np.asarray(Image.open(out / "preview.png").convert("RGB"))
    assert sheet.shape[0] >= 2 * image.shape[0] - 10  # both scans of the folder, one row each
    # imface eval without --data: the processed scan against its ground truth, the point set
    # against itself as fitted (target.ply), with a picture sheet
    assert (out / "cloud/target.ply").is_file() and not (out / "001/1_neutral/target.ply").exists()
    summary = evaluate_folder(out, num_points=5000)
    assert [r.name for r in summary.scored] == ["001/1_neutral", "cloud"]
    cloud = summary.scored[1].metrics
    # a raw input is scored within its footprint, both ways, as fit.json scores it
    assert cloud["chamfer_mm"] > 0 and cloud["input_to_fit_mm"] > 0 and cloud["fit_to_input_mm"] > 0
    assert cloud["chamfer_mm"] == (cloud["input_to_fit_mm"] + cloud["fit_to_input_mm"]) / 2
    assert cloud["distance_unit"] in ("mm", "input units")
    assert summary.overall["count"] == 2 and summary.overall["normal_consistency"]["mean"] > 0
    assert write_eval_sheet(summary).stat().st_size > 10_000
    import imface.eval.evaluate as evaluate  # one scan a sheet: two sheets; back to 100: one again

    monkeypatch.setattr(evaluate, "SHEET_ROWS", 1)
    assert write_eval_sheet(summary) == out / "eval/sheet.png" and (out / "eval/sheet-2.png").is_file()
    monkeypatch.undo()
    write_eval_sheet(summary)
    assert not (out / "eval/sheet-2.png").exists()
    # the demo's figure: the same rows, front view
    grid = np.asarray(Image.open(write_fit_grid(data_dir, out, ["001/1_neutral"], tmp_path / "grid.png")).convert("RGB"))
    assert grid.shape[1] > 3 * 200 and (grid < 200).any(axis=2).mean() > 0.05
    # asking for pictures of scans fitted without them fits those scans again
    plain = tmp_path / "plain"
    fit(loaded, data_dir, plain, scans=["001/1_neutral"], **FAST)
    assert not (plain / "001/1_neutral/preview.png").exists()
    (again,) = fit(loaded, data_dir, plain, scans=["001/1_neutral"], preview=True, **FAST)
    assert not again.skipped and (plain / "001/1_neutral/preview.png").is_file()


def test_the_preview_label_gives_the_fits_footprint_figure_when_it_has_one(tmp_path, monkeypatch):
    """A raw fit's label is its printed footprint median (the fit's completion past a partial
    input is no error); without it, the median over the fit as drawn."""
    import trimesh

    from imface.fitting import preview

    monkeypatch.setattr(preview, "save_png", lambda path, image: None)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    _, label = preview.write_preview(tmp_path, "scan", vertices, faces, vertices * 1.01, faces,
                                     {"fit_to_input_median_mm": 0.1234, "distance_unit": "mm"})
    assert label == "scan\nmedian fit-to-input 0.123 mm (over the input)"
    _, plain = preview.write_preview(tmp_path, "scan", vertices, faces, vertices * 1.01, faces)
    assert plain.startswith("scan\nmedian fit-to-input ") and "over the input" not in plain
    assert 0.3 < float(plain.split()[-2]) < 0.6  # the drawn fit is 1% (0.5 mm) off the input


def test_a_large_folder_gets_several_sheets(tmp_path, monkeypatch):
    from imface.fitting import preview

    monkeypatch.setattr(preview, "SHEET_ROWS", 2)
    pngs = []
    for i in range(5):
        pngs.append(tmp_path / f"scan{i}.png")
        Image.fromarray(np.full((10, 20 + i, 3), 40 * i, dtype=np.uint8)).save(pngs[-1])
    (tmp_path / "preview-4.png").write_bytes(b"a page of an earlier, larger folder")
    assert preview.stack_previews(pngs + [tmp_path / "missing.png"], tmp_path / "preview.png") == tmp_path / "preview.png"
    heights = [np.asarray(Image.open(tmp_path / name)).shape[0] for name in ("preview.png", "preview-2.png", "preview-3.png")]
    assert heights == [20, 20, 10] and not (tmp_path / "preview-4.png").exists()
    assert preview.stack_previews([tmp_path / "missing.png"], tmp_path / "none.png") is None
