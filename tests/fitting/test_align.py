"""Landmark-free inputs placed on the model: the scale and pose search, its refusals, the crop to
the unit sphere, named units of a found scale, and a refined scale."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.fitting.align import crop_to_model_sphere, prepare_poses, rescale_target, unit_of_scale
from imface.fitting.inputs import file_target, processed_target
from imface.ops.rigid import random_rotation
from scipy.spatial.transform import Rotation
from tests.baselines import make_face
from tests.synthetic_processed import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("faces"), num_identities=3, test_identities=1,
                                   surface_points=300, space_points=200)


def test_unit_of_a_found_scale_names_units_within_a_persons_size():
    # model units per input unit: a face 10-20% larger or smaller than the mean face is still in mm
    assert unit_of_scale(0.0101) == "mm" and unit_of_scale(0.0985) == "cm" and unit_of_scale(10.1) == "m"
    assert unit_of_scale(0.0085) == "mm" and unit_of_scale(0.012) == "mm" and unit_of_scale(0.118) == "cm"
    assert unit_of_scale(1.0) == "model" and unit_of_scale(0.43) == "arbitrary"
    assert unit_of_scale(0.0131) == "arbitrary" and unit_of_scale(0.0079) == "arbitrary"
    assert unit_of_scale(0.254) == "arbitrary" and unit_of_scale(0.0254 / 10) == "arbitrary"  # inches, tenths


def _template_and_face(tmp_path, scale: float, rotation: np.ndarray, clutter: bool):
    """The synthetic baseline face as template (model units) and another person's face written
    as a mesh in an arbitrary unit, turned, optionally with shoulders below it. (Another person
    would differ from the template in size as well: bench/fit_any.py measures that on built-in faces.)"""
    template, _ = make_face(np.zeros(6), step=0.03)
    vertices, faces = make_face(np.zeros(6), step=0.025)  # the template's person, meshed anew
    if clutter:
        blob = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        blob.vertices = blob.vertices * [0.9, 0.3, 0.4] + [0.0, -1.8, -0.4]
        faces = np.concatenate([faces, blob.faces + len(vertices)])
        vertices = np.concatenate([vertices, blob.vertices])
    trimesh.Trimesh(scale * vertices @ rotation.T + [3.0, -1.0, 2.0], faces, process=False).export(tmp_path / "s.ply")
    return template


@pytest.mark.parametrize("unit,scale", [("auto", 37.3), ("auto", 100.0), ("mm", 100.0)])
def test_alignment_finds_scale_and_pose_and_crops_the_clutter(tmp_path, unit, scale):
    rotation = random_rotation(np.random.default_rng(3), 35.0)
    template = _template_and_face(tmp_path, scale, rotation, clutter=True)
    before = (tmp_path / "s.ply").read_bytes()
    target = file_target(tmp_path / "s.ply", "s", unit, "auto", "auto")
    assert target.fit_pose and (target.unit == "auto") == (unit == "auto")
    prepare_poses([target], lambda: template)
    assert target.unit == ("arbitrary" if scale == 37.3 else "mm")
    assert target.raw_to_input[0, 0] * scale == pytest.approx(1.0, rel=0.02)
    assert target.alignment["coverage"] > 0.9 and target.alignment["scale_given"] == (unit != "auto")
    angle = np.degrees(np.arccos(np.clip((np.trace(target.init_rotation @ rotation) - 1) / 2, -1, 1)))
    assert angle < 2.0
    moved = target.surface_points @ target.init_rotation.T + target.init_translation
    assert np.linalg.norm(moved, axis=1).max() <= 1.0 + 1e-5  # the shoulders were cropped
    assert (tmp_path / "s.ply").read_bytes() == before


def test_alignment_refuses_what_matches_no_face(tmp_path):
    template, _ = make_face(np.zeros(6), step=0.03)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.9)  # the back of a head, as a dome
    dome = sphere.submesh([np.flatnonzero(sphere.triangles_center[:, 2] > 0.1)], append=True)
    dome.export(tmp_path / "dome.ply")
    target = file_target(tmp_path / "dome.ply", "dome", "auto", "auto", "auto")
    with pytest.raises(ImfaceError, match="no face found") as err:
        prepare_poses([target], lambda: template)
    assert "\n" not in str(err.value) and str(tmp_path / "dome.ply") in str(err.value)


def test_crop_keeps_the_unit_sphere_and_refuses_far_points(data_dir):
    target = processed_target(data_dir / "001/2_smile", "001/2_smile", "001", "smile", False, np.random.default_rng(0))
    before = len(target.surface_points)
    crop_to_model_sphere(target, np.eye(3), np.array([0.0, 0.0, 0.8]))  # shifted: part leaves the sphere
    assert 10 < len(target.surface_points) < before
    assert len(target.surface_normals) == len(target.surface_points)
    with pytest.raises(ImfaceError, match="far outside"):
        crop_to_model_sphere(target, np.eye(3), np.array([0.0, 0.0, 4.0]))


def test_a_refined_scale_rescales_the_input_frame(tmp_path):
    rotation = random_rotation(np.random.default_rng(4), 20.0)
    template = _template_and_face(tmp_path, 37.3, rotation, clutter=False)
    target = file_target(tmp_path / "s.ply", "s", "auto", "auto", "auto")
    prepare_poses([target], lambda: template)
    assert target.fit_scale
    searched, points = target.alignment["scale"], target.surface_points.copy()
    raw = target.reference[0] / searched  # the input's own vertices
    rescale_target(target, 0.97)
    np.testing.assert_allclose(target.surface_points, 0.97 * points, rtol=1e-6)
    assert target.alignment["search_scale"] == searched
    assert target.alignment["scale"] == pytest.approx(0.97 * searched)
    assert target.alignment["mm_per_input_unit"] == pytest.approx(100 * 0.97 * searched)
    homogeneous = np.c_[raw, np.ones(len(raw))] @ target.raw_to_input.T
    np.testing.assert_allclose(homogeneous[:, :3], target.reference[0], rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def shipped_mean_face():
    """The shipped model's mean face: its front points (template) and its mesh (a real face shape,
    unlike the synthetic one, which reads about the same upside down), model units."""
    from imface.fitting.outputs import load_model
    from imface.fitting.run import _mean_face_front
    from imface.generate import face_mesh

    loaded = load_model(None, "cpu")
    model = loaded.model.eval().requires_grad_(False)
    mesh = face_mesh(model, loaded.code_stats["id_mean"], loaded.code_stats["exp_mean"], True, resolution=64)
    return _mean_face_front(model, loaded.code_stats), mesh


@pytest.mark.parametrize("frame,view", [("z-up", "looks along -y, up +z"), ("upside down", "looks along +z, up -y"),
                                        ("turned left", "looks along +x, up +y")])
def test_faces_exported_in_other_frames_are_found(tmp_path, shipped_mean_face, frame, view):
    turns = {"z-up": ("x", 90), "upside down": ("z", 180), "turned left": ("y", 90)}
    axis, degrees = turns[frame]
    rotation = Rotation.from_euler(axis, degrees, degrees=True).as_matrix() @ random_rotation(np.random.default_rng(5), 12.0)
    template, mesh = shipped_mean_face
    trimesh.Trimesh(100.0 * mesh.vertices @ rotation.T + [30.0, -10.0, 20.0], mesh.faces).export(tmp_path / "s.ply")
    target = file_target(tmp_path / "s.ply", "s", "auto", "auto", "auto")
    prepare_poses([target], lambda: template)
    assert target.alignment["frame"] == view and target.unit == "mm"
    angle = np.degrees(np.arccos(np.clip((np.trace(target.init_rotation @ rotation) - 1) / 2, -1, 1)))
    assert angle < 3.0


def test_a_named_unit_is_fitted_at_that_unit_and_the_persons_size_is_reported(tmp_path):
    # a person 12% larger than the mean face, in mm: the unit is named, not mistaken for 0.89 mm
    rotation = random_rotation(np.random.default_rng(4), 20.0)
    template = _template_and_face(tmp_path, 112.0, rotation, clutter=False)
    target = file_target(tmp_path / "s.ply", "s", "auto", "auto", "auto")
    prepare_poses([target], lambda: template)
    assert target.unit == "mm" and target.raw_to_input[0, 0] == pytest.approx(0.01, rel=1e-9)
    assert not target.fit_scale  # a named unit's scale is known: no sweep or refinement of it
    assert target.alignment["size_vs_mean_face"] == pytest.approx(1.12, abs=0.03)
    assert min(target.alignment["margins"].values()) > 0
    moved = target.surface_points @ target.init_rotation.T + target.init_translation
    nose = moved[np.argmax(moved[:, 2])]
    assert np.linalg.norm(nose[:2]) < 0.05  # the larger face is centred on the mean face, not shifted off it


def test_a_refusal_names_the_failed_measures_and_the_direction(tmp_path):
    template, _ = make_face(np.zeros(6), step=0.03)
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.9)
    ball.export(tmp_path / "ball.ply")
    target = file_target(tmp_path / "ball.ply", "ball", "auto", "auto", "auto")
    with pytest.raises(ImfaceError, match="no face found: .*looks along") as err:
        prepare_poses([target], lambda: template)
    margins = err.value.measures["margins"]
    assert min(margins.values()) < 0 and set(margins) == {"nose_coverage", "coverage", "residual", "protrusion"}
