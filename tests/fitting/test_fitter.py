"""Fitting codes to scans (Eq. 17) with the shared tiny trained model on synthetic spheres."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import trimesh
import typer
from typer.testing import CliRunner

from imface import losses
from imface.cli.fit_cmd import fit as fit_command
from imface.config import DEFAULT_FIT_ROBUST_MM
from imface.config.fit import FitSettings
from imface.contracts.fits import read_fits_index
from imface.errors import ImfaceError
from imface.fitting.code_space import code_basis
from imface.fitting.fitter import FitBatch, optimise, per_scan_losses
from imface.fitting.inputs import FitTarget, processed_target
from imface.fitting.outputs import TERMS
from imface.fitting.run import fit
from imface.frame import CANONICAL_LANDMARKS_MM
from imface.generate import face_mesh
from imface.ops.metrics import evaluate_reconstruction
from imface.preprocess.align import apply_matrix
from tests.fitting import FAST
from tests.synthetic_processed import sphere_of


def _target(data_dir, name: str, neutral: bool) -> FitTarget:
    identity, stem = name.split("/")
    return processed_target(data_dir / name, name, identity, stem.split("_", 1)[1], neutral, np.random.default_rng(0))


def _settings(**kw) -> FitSettings:
    return FitSettings(**{"steps": 30, "surface_points": 256, "space_points": 256, **kw})


def test_one_scan_terms_equal_the_library_loss_functions(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "001/2_smile", False)
    settings = _settings()
    batch = FitBatch([target], settings, torch.device("cpu"))
    samples = batch.sample(3)
    ids = loaded.code_stats["id_mean"][None] + 0.01
    exps = loaded.code_stats["exp_mean"][None] - 0.01
    neutral = torch.tensor([False])
    eye, zero = torch.eye(3)[None], torch.zeros(1, 3)
    weights = loaded.experiment.loss
    terms = per_scan_losses(loaded.model, batch, samples, ids, exps, neutral, eye, zero, weights)
    points = torch.cat((samples["surface"], samples["slot"]), dim=1)
    out = loaded.model.evaluate(points, ids, exps, neutral, with_gradients=True)
    target_sdf = torch.cat((torch.zeros_like(samples["surface"][..., 0]), samples["sdf"]), dim=1)
    normals = torch.cat((samples["normals"], samples["grad"]), dim=1)
    expected = {
        "sdf": weights.sdf * losses.sdf_loss(out.sdf, target_sdf),
        "normal": weights.normal * losses.normal_loss(out.gradient, normals),
        "eikonal": weights.eikonal * losses.eikonal_loss(out.gradient),
        "embedding": weights.embedding * (losses.embedding_loss(ids) + losses.embedding_loss(exps)),
        "landmark": weights.landmark_generation * losses.landmark_l1(out.landmarks, batch.landmarks),
    }
    for key, value in expected.items():
        assert terms[key].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-6), key


def _chamfer(loaded, state, row, data_dir, name) -> float:
    mesh = face_mesh(loaded.model, state.id_codes[row], state.exp_codes[row], bool(state.neutral[row]), 40)
    gt = trimesh.load(data_dir / name / "mesh.ply", process=False)
    return evaluate_reconstruction(mesh.vertices, mesh.faces, gt.vertices, gt.faces, num_points=4000, align="none").chamfer_mm


def test_fit_recovers_a_training_scan_from_its_samples(tiny):
    data_dir, _, loaded = tiny
    name = "002/2_smile"
    trained_id = loaded.model.identity_codes.weight[loaded.codes.identities["002"]]
    trained_exp = loaded.model.expression_codes.weight[loaded.codes.expressions[name]]
    snapshots = {}

    def record(step, state):
        snapshots[step] = state

    # A small lr: the tiny model's codes are far from identifiable, and this checks that the fit
    # moves toward the trained code rather than to some other code of a similar shape.
    optimise(loaded.model, [_target(data_dir, name, False)], _settings(steps=60, lr=0.02), loaded.code_stats,
             loaded.experiment.loss, callback=record)
    first, last = snapshots[0], snapshots[60]

    def code_error(state):
        return float(torch.cat((state.id_codes[0] - trained_id, state.exp_codes[0] - trained_exp)).norm())

    assert code_error(last) < 0.97 * code_error(first)
    assert _chamfer(loaded, last, 0, data_dir, name) < 0.8 * _chamfer(loaded, first, 0, data_dir, name)


def test_batched_fit_equals_fitting_alone_and_same_identity_shares_z_id(tiny):
    data_dir, _, loaded = tiny
    names = [("001/1_neutral", True), ("001/2_smile", False), ("003/3_jaw_open", False)]
    targets = [_target(data_dir, n, flag) for n, flag in names]
    settings = _settings(steps=15)
    together, history = optimise(loaded.model, targets, settings, loaded.code_stats, loaded.experiment.loss)
    assert history.shape == (15, 3, len(TERMS))
    for row, target in enumerate(targets):
        alone, _ = optimise(loaded.model, [target], settings, loaded.code_stats, loaded.experiment.loss)
        torch.testing.assert_close(together.id_codes[row], alone.id_codes[0], atol=2e-4, rtol=1e-3)
        if not target.neutral:
            torch.testing.assert_close(together.exp_codes[row], alone.exp_codes[0], atol=2e-4, rtol=1e-3)
    shared, _ = optimise(loaded.model, targets[:2], settings, loaded.code_stats, loaded.experiment.loss, groups=[0, 0])
    assert torch.equal(shared.id_codes[0], shared.id_codes[1])
    assert not torch.equal(together.id_codes[0], together.id_codes[1])


def test_partial_point_cloud_without_normals_lowers_the_surface_sdf(tiny, tmp_path):
    data_dir, _, loaded = tiny
    surface = np.load(data_dir / "004/2_smile/surface_points.npy")
    centre, _ = sphere_of(3, "smile")
    front = surface[surface[:, 2] > centre[2]]  # one depth view: the front half only
    np.save(tmp_path / "scan.npy", front)
    results = fit(loaded, tmp_path / "scan.npy", tmp_path / "fits", neutral="no", unit="model", **FAST)
    history = [json.loads(line) for line in (tmp_path / "fits/scan/loss_history.jsonl").read_text().splitlines()]
    assert len(history) == FAST["steps"] and history[0]["normal"] == 0.0
    assert np.mean([h["sdf"] for h in history[-5:]]) < 0.9 * history[0]["sdf"]
    # a point set is scored within its footprint, in mm (given unit); no raw mesh: it has no faces to map back
    assert results[0].metrics["distance_unit"] == "mm" and not (tmp_path / "fits/scan/mesh_raw.ply").exists()


def test_landmark_free_raw_mesh_recovers_the_rigid_pose(tiny, tmp_path):
    data_dir, _, loaded = tiny
    centre, radius = sphere_of(1, "smile")
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    keep = np.flatnonzero(sphere.vertices[sphere.faces].mean(axis=1)[:, 2] > -0.3 * radius)
    front = sphere.submesh([keep], append=True)
    front.apply_translation(centre)
    angle = np.deg2rad(5.0)
    rotation = trimesh.transformations.rotation_matrix(angle, [0.3, 1.0, 0.2])[:3, :3]
    offset_mm = np.array([12.0, -8.0, 15.0])
    raw = (front.vertices * 100.0) @ rotation.T + offset_mm  # a scan in mm, moved
    trimesh.Trimesh(raw, front.faces, process=False).export(tmp_path / "face.ply")
    (result,) = fit(loaded, tmp_path / "face.ply", tmp_path / "fits", neutral="no", unit="mm",
                    **{**FAST, "steps": 80})
    info = json.loads((tmp_path / "fits/face/fit.json").read_text())
    assert info["frames"]["unit"] == "mm" and info["frames"]["pose_fitted"]
    assert info["settings"]["robust_distance"] == pytest.approx(DEFAULT_FIT_ROBUST_MM / 100)  # raw input: robust
    # The pose maps the scan (in model units) onto the true sphere: compare where the raw
    # points' centre lands. (A sphere's own spin about its centre is not observable.)
    posed = (raw / 100.0) @ result.rotation.T + result.translation
    true_centre = centre
    fitted_centre = posed.mean(axis=0) - (front.vertices.mean(axis=0) - centre)
    assert np.linalg.norm(fitted_centre - true_centre) * 100 < 4.0  # mm, from a ~21 mm offset
    assert (tmp_path / "fits/face/mesh_raw.ply").is_file()
    mesh_raw = trimesh.load(tmp_path / "fits/face/mesh_raw.ply", process=False)
    mesh_model = trimesh.load(tmp_path / "fits/face/mesh.ply", process=False)
    np.testing.assert_allclose(mesh_raw.vertices / 100.0 @ result.rotation.T + result.translation,
                               mesh_model.vertices, atol=1e-4)


@pytest.mark.parametrize("case", ["empty", "nan", "wrong_unit", "far_away"])
def test_bad_point_inputs_raise_one_line_errors(tiny, tmp_path, case):
    _, exp_dir, _ = tiny
    path = tmp_path / "cloud.npy"
    if case == "empty":
        np.save(path, np.zeros((0, 3), dtype=np.float32))
    elif case == "nan":
        points = np.random.default_rng(0).normal(size=(100, 3)) * 0.3
        points[5, 1] = np.nan
        np.save(path, points)
    elif case == "wrong_unit":  # a face in mm declared as model units
        np.save(path, np.random.default_rng(0).normal(size=(500, 3)) * 40.0 + [0, 0, 300.0])
    else:  # a face-sized surface, in model units, but nowhere near the model's unit sphere
        points = np.random.default_rng(0).normal(size=(500, 3))
        np.save(path, 0.6 * points / np.linalg.norm(points, axis=1, keepdims=True) + [0, 0, 5.0])
    with pytest.raises(ImfaceError) as err:
        fit(exp_dir, path, tmp_path / "fits", unit="model" if case in ("wrong_unit", "far_away") else "auto", **FAST)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert {"empty": "empty", "nan": "NaN", "wrong_unit": "check --unit", "far_away": "far outside"}[case] in message


def test_bad_models_raise_one_line_errors(tiny, tmp_path):
    data_dir, exp_dir, _ = tiny
    other = tmp_path / "other"
    shutil.copytree(exp_dir, other)
    config = (other / "config.yaml").read_text().replace("local_hidden: 16", "local_hidden: 24")
    (other / "config.yaml").write_text(config)
    with pytest.raises(ImfaceError) as err:
        fit(other, data_dir, tmp_path / "fits", **FAST)
    assert "checkpoints" in str(err.value) and "\n" not in str(err.value)
    broken = tmp_path / "broken"
    shutil.copytree(exp_dir, broken)
    weights = sorted((broken / "checkpoints").glob("step-*.safetensors"))[-1]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ImfaceError) as err:
        fit(broken, data_dir, tmp_path / "fits", **FAST)
    assert str(weights.name) in str(err.value) and "\n" not in str(err.value)


def test_raw_scan_with_landmarks_is_preprocessed_and_mapped_back(tiny, tmp_path):
    _, exp_dir, _ = tiny
    radius, centre = 90.0, np.array([0.0, 0.0, -50.0])  # a sphere through the nose tip, mm
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    sphere.apply_translation(centre)
    offset = CANONICAL_LANDMARKS_MM - centre
    landmarks = centre + radius * offset / np.linalg.norm(offset, axis=1, keepdims=True)
    moved = trimesh.transformations.rotation_matrix(np.deg2rad(8.0), [0, 1, 0])[:3, :3]
    shift = np.array([30.0, -20.0, 500.0])
    raw = tmp_path / "raw"
    raw.mkdir()
    trimesh.Trimesh(sphere.vertices @ moved.T + shift, sphere.faces, process=False).export(raw / "face.obj")
    np.savetxt(raw / "face.lmk.txt", landmarks @ moved.T + shift)
    (raw / "scans.csv").write_text("mesh,landmarks,identity,expression\nface.obj,face.lmk.txt,005,smile\n")
    (result,) = fit(exp_dir, raw / "scans.csv", tmp_path / "fits", **FAST)
    assert result.name == "005/face" and (tmp_path / "fits/_preprocessed/005/face/meta.json").is_file()
    meta = json.loads((tmp_path / "fits/_preprocessed/005/face/meta.json").read_text())
    mesh_raw = trimesh.load(tmp_path / "fits/005/face/mesh_raw.ply", process=False)
    mesh = trimesh.load(tmp_path / "fits/005/face/mesh.ply", process=False)
    np.testing.assert_allclose(apply_matrix(mesh_raw.vertices, np.asarray(meta["raw_to_model"])), mesh.vertices, atol=1e-4)
    assert np.linalg.norm(mesh_raw.vertices.mean(axis=0) - shift) < 150.0  # back near the raw scan, in mm
    assert read_fits_index(tmp_path / "fits")["scans"][0]["processed"].endswith("_preprocessed/005/face")


def test_cli_fit_command(tiny, tmp_path):
    data_dir, exp_dir, _ = tiny
    app = typer.Typer()
    app.command("fit")(fit_command)
    app.command("other")(lambda: None)  # two commands: "fit" stays a subcommand
    args = ["fit", "--model", str(exp_dir), "--in", str(data_dir), "--out", str(tmp_path / "fits"), "--scans",
            "004/2_smile", "--steps", "5", "--points", "64", "--resolution", "24", "--no-landmarks", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "004/2_smile:" in result.output and "chamfer" in result.output
    assert "robust data term off" in result.output  # a processed dataset: no robust term by default
    info = json.loads((tmp_path / "fits/004/2_smile/fit.json").read_text())
    assert info["settings"]["landmarks"] is False and info["settings"]["steps"] == 5
    assert "skipped" in CliRunner().invoke(app, args).output
    robust = CliRunner().invoke(app, [*args, "--robust", "2.5", "--out", str(tmp_path / "fits-robust")])
    assert robust.exit_code == 0 and "robust data term 2.5 mm" in robust.output, robust.output
    bad = CliRunner().invoke(app, [*args[:-2], "--device", "tpu"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ImfaceError)


def test_robust_distance_stops_far_points_from_pulling(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "001/2_smile", False)
    settings = _settings(surface_points=256)
    weights = loaded.experiment.loss
    neutral, eye, zero = torch.tensor([False]), torch.eye(3)[None], torch.zeros(1, 3)

    def gradient(offset: float, robust: float) -> torch.Tensor:
        """d(sdf term)/d(exp code) with the last quarter of the surface samples pushed ``offset``
        (model units) out along their normals: outliers 30 or 60 mm off the surface."""
        batch = FitBatch([target], settings, torch.device("cpu"))
        samples = batch.sample(0)
        surface = samples["surface"].clone()
        surface[:, 192:] = surface[:, 192:] + offset * samples["normals"][:, 192:]
        samples["surface"] = surface
        exps = loaded.code_stats["exp_mean"][None].clone().requires_grad_(True)
        terms = per_scan_losses(loaded.model, batch, samples, loaded.code_stats["id_mean"][None], exps, neutral,
                                eye, zero, weights, robust)
        (grad,) = torch.autograd.grad(terms["sdf"].sum(), exps)
        return grad

    # With the truncation, outliers 30 or 60 mm out pull the same (not at all); without, they differ.
    torch.testing.assert_close(gradient(0.3, 0.05), gradient(0.6, 0.05))
    assert not torch.allclose(gradient(0.3, 0.0), gradient(0.6, 0.0))


def test_code_prior_keeps_codes_near_the_training_mean(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "004/2_smile", False)
    stats = loaded.code_stats

    mean, basis = code_basis(stats["exp_mean"], stats["exp_cov"])

    def spread_units(state) -> float:  # the fit's own code units
        return float(torch.linalg.solve(basis, state.exp_codes[0] - mean).norm())

    free, history_free = optimise(loaded.model, [target], _settings(code_prior=0.0, exp_code_prior=0.0), stats,
                                  loaded.experiment.loss)
    held, history_held = optimise(loaded.model, [target], _settings(code_prior=100.0, exp_code_prior=100.0), stats,
                                  loaded.experiment.loss)
    prior = TERMS.index("prior")
    assert (history_free[:, 0, prior] == 0).all() and history_held[-1, 0, prior] > 0
    assert spread_units(held) < 0.5 * spread_units(free)


def test_the_expression_prior_has_its_own_weight(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "004/2_smile", False)
    stats = loaded.code_stats
    id_mean, id_basis = code_basis(stats["id_mean"], stats["id_cov"])
    exp_mean, exp_basis = code_basis(stats["exp_mean"], stats["exp_cov"])

    def units(state) -> tuple[float, float]:
        return (float(torch.linalg.solve(id_basis, state.id_codes[0] - id_mean).norm()),
                float(torch.linalg.solve(exp_basis, state.exp_codes[0] - exp_mean).norm()))

    both = units(optimise(loaded.model, [target], _settings(code_prior=100.0, exp_code_prior=100.0), stats,
                          loaded.experiment.loss)[0])
    id_only = units(optimise(loaded.model, [target], _settings(code_prior=100.0, exp_code_prior=0.0), stats,
                             loaded.experiment.loss)[0])
    exp_only = units(optimise(loaded.model, [target], _settings(code_prior=0.0, exp_code_prior=100.0), stats,
                              loaded.experiment.loss)[0])
    # Without its weight the expression code moves freely; the identity code is held either way.
    assert id_only[1] > 2 * both[1] and abs(id_only[0] - both[0]) < 0.5 * max(both[0], 1e-3) + 0.05
    assert exp_only[0] > 2 * both[0] and exp_only[1] < 0.5 * id_only[1]


def test_a_scale_in_the_pose_equals_scaling_the_samples(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "001/2_smile", False)
    batch = FitBatch([target], _settings(), torch.device("cpu"))
    samples = batch.sample(0)
    stats, weights = loaded.code_stats, loaded.experiment.loss
    args = (stats["id_mean"][None], stats["exp_mean"][None], torch.tensor([False]), torch.eye(3)[None],
            torch.tensor([[0.01, -0.02, 0.03]]))
    factor = 1.08
    scaled = {**samples, "surface": factor * samples["surface"], "slot": factor * samples["slot"],
              "sdf": factor * samples["sdf"]}
    with_scale = per_scan_losses(loaded.model, batch, samples, *args, weights, scale=torch.tensor([factor]))
    pre_scaled = per_scan_losses(loaded.model, batch, scaled, *args, weights)
    for name in ("sdf", "normal", "eikonal", "total"):
        torch.testing.assert_close(with_scale[name], pre_scaled[name])


def test_the_scale_is_refined_only_where_the_search_found_it(tiny):
    data_dir, _, loaded = tiny
    names = ["001/2_smile", "003/3_jaw_open"]
    targets = [_target(data_dir, n, False) for n in names]
    for target in targets:  # the search's scale 15% too large
        target.surface_points = target.surface_points * 1.15
        target.space_points, target.space_sdf = target.space_points * 1.15, target.space_sdf * 1.15
        target.fit_pose = True
    targets[0].fit_scale = True
    stats, weights = loaded.code_stats, loaded.experiment.loss
    kept, _ = optimise(loaded.model, targets, _settings(), stats, weights)
    assert torch.equal(kept.scale, torch.ones(2))  # scale_lr 0: the search's scale stays
    refined, _ = optimise(loaded.model, targets, _settings(scale_lr=0.01), stats, weights)
    assert float(refined.scale[0]) < 0.99 and float(refined.scale[1]) == 1.0


@pytest.mark.parametrize("option, value, flag", [("robust_distance", -1.0, "--robust"), ("scale_lr", -0.1, "--scale-lr"),
                                                 ("code_basis", "spherical", "--code-basis"), ("lr", 0.0, "--lr"),
                                                 ("scale_sweep", 2, "--scale-sweep"), ("unit", "inch", "--unit"),
                                                 ("pose", "guess", "--pose"), ("neutral", "maybe", "--neutral")])
def test_bad_fit_options_are_refused_before_the_model_loads(tmp_path, option, value, flag):
    # The model path does not exist: a check after loading would name the model instead.
    with pytest.raises(ImfaceError) as err:
        fit(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "fits", **{option: value})
    assert flag in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "fits").exists()


def test_a_principal_basis_fit_lowers_the_loss_and_differs_from_the_diagonal_one(tiny):
    data_dir, _, loaded = tiny
    target = _target(data_dir, "004/2_smile", False)
    stats, weights = loaded.code_stats, loaded.experiment.loss
    principal, history = optimise(loaded.model, [target], _settings(code_basis="principal"), stats, weights)
    diagonal, _ = optimise(loaded.model, [target], _settings(), stats, weights)
    assert np.isfinite(history).all() and history[-1, 0, 0] < history[0, 0, 0]
    assert not torch.allclose(principal.exp_codes, diagonal.exp_codes, atol=1e-4)
