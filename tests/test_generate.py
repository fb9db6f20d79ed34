"""Generation on the tiny trained model: extraction and colours, sampling, interpolation, transfer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from imface.errors import ImfaceError
from imface.generate import (
    TEMPLATE_BOX_HIGH,
    TEMPLATE_BOX_LOW,
    Face,
    blend_colors,
    evaluate_at,
    extract_scan_mesh,
    face_landmarks,
    generate_meshes,
    interpolate_faces,
    mesh_colors,
    resolve_face,
    safe_name,
    sample_faces,
    surface_distance_mm,
    template_colors,
    transfer_face,
)
from imface.io.mesh import write_mesh
from imface.pretrained import CodeStats, load_pretrained
from tests.synthetic_processed import sphere_of
from tests.model_fixtures import EXPRESSIONS as SYNTHETIC_EXPRESSIONS


@pytest.fixture(scope="module")
def pretrained(trained_tiny):
    return load_pretrained(trained_tiny[1])


def test_template_colors_against_a_naive_mapping():
    points = np.random.default_rng(0).uniform(-1.2, 1.2, size=(100, 3))
    expected = [[min(1.0, max(0.0, (p[i] - TEMPLATE_BOX_LOW[i]) / (TEMPLATE_BOX_HIGH[i] - TEMPLATE_BOX_LOW[i])))
                 for i in range(3)] for p in points]
    assert np.allclose(template_colors(points), expected)


def test_blend_colors_mix_distinct_region_colours():
    one_hot = np.eye(5)
    palette = blend_colors(one_hot)
    assert len({tuple(c) for c in np.round(palette, 6)}) == 5
    weights = np.random.default_rng(1).dirichlet(np.ones(5), size=20)
    assert np.allclose(blend_colors(weights), weights @ palette)


def test_surface_distance_against_a_plane():
    plane = trimesh.creation.box(extents=(2.0, 2.0, 0.0001))
    points = np.array([[0.1, 0.2, 0.05], [0.0, 0.0, -0.3]])
    assert np.allclose(surface_distance_mm(points, plane.vertices, plane.faces), [5.0, 30.0], atol=0.01)


def test_extracted_mesh_lies_on_the_zero_level(pretrained):
    face = resolve_face(pretrained, "001")
    mesh = extract_scan_mesh(pretrained, face.id_code, face.exp_code, face.neutral, 40)
    assert len(mesh.faces) > 100
    values = evaluate_at(pretrained, mesh.vertices, face)
    sdf = values["sdf"]
    assert np.abs(sdf).max() < 2.0 / 39 * np.sqrt(3)  # within one grid cell diagonal
    # each field's blend weights per point sum to one (the expression field's too: not the joint model)
    for key in ("template_weights", "identity_weights", "expression_weights"):
        assert values[key].shape[0] == len(mesh.vertices) and np.allclose(values[key].sum(axis=1), 1.0, atol=1e-4)
    colors, errors = mesh_colors(pretrained, mesh.vertices, face, "error", target=(mesh.vertices, mesh.faces))
    assert np.allclose(errors, 0.0, atol=1e-6) and colors.shape == (len(mesh.vertices), 3)
    blend, _ = mesh_colors(pretrained, mesh.vertices, face, "blend")
    assert blend.shape == (len(mesh.vertices), 3) and 0.0 <= blend.min() and blend.max() <= 1.0
    with pytest.raises(ImfaceError, match="--target"):
        mesh_colors(pretrained, mesh.vertices, face, "error")


def _stats(dim_id: int = 4, dim_exp: int = 3) -> CodeStats:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(dim_id, dim_id)), rng.normal(size=(dim_exp, dim_exp))
    return CodeStats(rng.normal(size=dim_id), a @ a.T, rng.normal(size=dim_exp), b @ b.T, 10, 6)


def test_sampling_is_deterministic_and_follows_the_statistics():
    stats = _stats()
    first, again, other = (sample_faces(stats, 3, seed=s) for s in (7, 7, 8))
    assert all(torch.equal(x.id_code, y.id_code) and torch.equal(x.exp_code, y.exp_code) for x, y in zip(first, again))
    assert not torch.equal(first[0].id_code, other[0].id_code)
    many = sample_faces(stats, 20000, seed=0)
    ids = torch.stack([f.id_code for f in many]).double().numpy()
    exps = torch.stack([f.exp_code for f in many]).double().numpy()
    for values, mean, cov in ((ids, stats.id_mean, stats.id_cov), (exps, stats.exp_mean, stats.exp_cov)):
        tolerance = 5 * np.sqrt(np.diag(cov) / len(values))
        assert np.all(np.abs(values.mean(0) - mean) < tolerance)
        assert np.allclose(np.cov(values, rowvar=False), cov, atol=0.1 * np.abs(cov).max())
    half = sample_faces(stats, 20000, seed=0, scale=0.5)
    assert np.allclose(np.stack([f.id_code for f in half]).std(0), 0.5 * ids.std(0), rtol=0.02)
    neutral = sample_faces(stats, 2, seed=0, neutral=True)
    assert all(f.neutral and not f.exp_code.any() for f in neutral)


def test_interpolation_endpoints_equal_the_inputs(pretrained):
    start, end = resolve_face(pretrained, "001+001/2_smile"), resolve_face(pretrained, "002+002/3_jaw_open")
    faces = interpolate_faces(start, end, 5)
    assert len(faces) == 5
    assert torch.equal(faces[0].id_code, start.id_code) and torch.equal(faces[0].exp_code, start.exp_code)
    assert torch.equal(faces[-1].id_code, end.id_code) and torch.equal(faces[-1].exp_code, end.exp_code)
    assert torch.allclose(faces[2].id_code, (start.id_code + end.id_code) / 2)
    assert torch.allclose(faces[1].exp_code, 0.75 * start.exp_code + 0.25 * end.exp_code)
    from_neutral = interpolate_faces(resolve_face(pretrained, "001"), end, 3)
    assert from_neutral[0].neutral and not from_neutral[1].neutral
    assert torch.allclose(from_neutral[1].exp_code, end.exp_code / 2)
    with pytest.raises(ImfaceError, match="--steps"):
        interpolate_faces(start, end, 1)


def test_transfer_keeps_the_identity_and_takes_the_expression(pretrained):
    source = resolve_face(pretrained, "001")
    donor = resolve_face(pretrained, "002+002/3_jaw_open")
    result = transfer_face(source, donor)
    assert torch.equal(result.id_code, source.id_code) and torch.equal(result.exp_code, donor.exp_code)
    assert result.neutral == donor.neutral is False
    observed, canonical = face_landmarks(pretrained, result)
    _, source_canonical = face_landmarks(pretrained, source)
    assert np.array_equal(canonical, source_canonical)  # l' = eta'(z_id): A's own
    with torch.no_grad():  # l = eta(z_exp_B (+) z_id_A)
        expected = pretrained.model.landmark_net(torch.cat((donor.exp_code, source.id_code))[None]).reshape(observed.shape)
    assert np.allclose(observed, expected.numpy(), atol=1e-6)
    # Identity kept: the transfer's SDF at p is A's neutral SDF at the canonical point E(p).
    model = pretrained.model
    points = torch.rand(1, 400, 3) - 0.5
    with torch.no_grad():
        out = model.evaluate(points, result.id_code[None], result.exp_code[None], torch.tensor([False]))
        neutral_a = model.sdf(out.canonical_points, source.id_code[None], source.exp_code[None], torch.tensor([True]))
    assert torch.allclose(out.sdf, neutral_a, atol=1e-5)
    # The expression changes the face: the transfer is not A's neutral face.
    assert not torch.allclose(out.sdf, model.sdf(points, source.id_code[None], source.exp_code[None], torch.tensor([True])))


def test_transfer_matches_the_ground_truth_of_the_synthetic_faces(pretrained):
    """Synthetic faces are spheres: an expression moves/grows identity i's sphere the same way
    for everyone, so z_id of A with z_exp of B's expression must give A's sphere with that
    expression, not A's neutral one, A's other expression or B's own face."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions[:, 2] = np.abs(directions[:, 2])  # the front half, where the training samples are dense

    def truth(identity: int, expression: str, points: np.ndarray) -> np.ndarray:
        centre, radius = sphere_of(identity, expression)
        return np.linalg.norm(points - centre, axis=1) - radius

    def displacement(face: Face) -> np.ndarray:
        observed, canonical = face_landmarks(pretrained, face)
        return observed - canonical

    for a, b in ((0, 1), (1, 2), (2, 0)):
        for expression, other in (("smile", "jaw_open"), ("jaw_open", "smile")):
            donor = resolve_face(pretrained, f"{b + 1:03d}+{b + 1:03d}/{SYNTHETIC_EXPRESSIONS.index(expression) + 1}_{expression}")
            result = transfer_face(resolve_face(pretrained, f"{a + 1:03d}"), donor)
            centre, radius = sphere_of(a, expression)
            points = centre + radius * directions
            sdf = evaluate_at(pretrained, points, result)["sdf"]
            errors = {key: np.abs(sdf - truth(i, e, points)).mean()
                      for key, (i, e) in {"wanted": (a, expression), "neutral": (a, "neutral"), "other": (a, other),
                                          "donor": (b, expression)}.items()}
            assert errors["wanted"] < 0.75 * min(errors["neutral"], errors["other"], errors["donor"]), errors
            # The observed landmarks move (l - l') about as the donor's do.
            moved, donor_moved = displacement(result), displacement(donor)
            assert np.linalg.norm(moved - donor_moved) < 0.5 * np.linalg.norm(donor_moved)


def test_generate_meshes_writes_meshes_sheet_and_summary(pretrained, tmp_path):
    faces = [resolve_face(pretrained, "001"), resolve_face(pretrained, "002+002/2_smile")]
    summary = generate_meshes(pretrained, faces, tmp_path / "model", resolution=32, color="template")
    mm = generate_meshes(pretrained, faces[:1], tmp_path / "mm", resolution=32, units="mm", fmt="obj", sheet=False)
    first = trimesh.load(tmp_path / "model" / summary["faces"][0]["file"], process=False)
    in_mm = trimesh.load(tmp_path / "mm" / mm["faces"][0]["file"], process=False)
    assert np.allclose(in_mm.vertices, 100.0 * first.vertices, atol=1e-3)
    assert (tmp_path / "model" / "sheet.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "mm" / "sheet.png").exists()
    saved = json.loads((tmp_path / "model" / "faces.json").read_text())
    assert [f["name"] for f in saved["faces"]] == ["001", "002+002/2_smile"]
    assert first.visual.vertex_colors.shape[0] == len(first.vertices)


def test_write_mesh_round_trips_colours(tmp_path):
    box = trimesh.creation.box()
    colors = np.random.default_rng(0).uniform(size=(len(box.vertices), 3))
    for suffix in ("ply", "obj"):
        loaded = trimesh.load(write_mesh(tmp_path / f"box.{suffix}", box.vertices, box.faces, colors), process=False)
        assert np.allclose(loaded.vertices, box.vertices, atol=1e-6)
        assert np.abs(loaded.visual.vertex_colors[:, :3] / 255.0 - colors).max() < 1.0 / 255 + 1e-6
    with pytest.raises(ImfaceError, match="unsupported mesh format"):
        write_mesh(tmp_path / "box.stl", box.vertices, box.faces)


def test_names_and_code_width_errors(pretrained):
    with pytest.raises(ImfaceError, match="nearest known"):
        resolve_face(pretrained, "00l")
    with pytest.raises(ImfaceError, match="unknown expression"):
        resolve_face(pretrained, "001+sad")
    wrong = Face("other", torch.zeros(3), torch.zeros(3), True)
    with pytest.raises(ImfaceError, match="another model"):
        evaluate_at(pretrained, np.zeros((2, 3)), wrong)
    assert safe_name("001/2_smile") == "001-2_smile"
