"""Colour modes on the tiny model: the extract command's colours, kept per mesh; errors to a target."""
from __future__ import annotations

import numpy as np
import pytest

from imface.generate import blend_colors, evaluate_at, template_colors
from imface.viewer.codes import LatentSpace
from imface.viewer.colors import PLAIN_COLOR, Target, blend_fields, paint, sharpen, target_errors
from imface.viewer.worker import extract_face


@pytest.fixture(scope="module")
def face_and_mesh(tiny):
    space = LatentSpace.from_stats(tiny.code_stats)
    face = space.mean_state().face(space)
    return face, extract_face(tiny, face, 40)


def test_plain_is_one_colour(tiny, face_and_mesh):
    face, mesh = face_and_mesh
    painted = paint(tiny, mesh, face, "plain")
    assert painted.colors.shape == (len(mesh.vertices), 3) and np.allclose(painted.colors, PLAIN_COLOR)
    assert painted.errors is None


def test_template_and_blend_colours_are_the_generate_module_s(tiny, face_and_mesh):
    face, mesh = face_and_mesh
    values = evaluate_at(tiny, mesh.vertices, face)
    template = paint(tiny, mesh, face, "template")
    assert np.allclose(template.colors, template_colors(values["template_points"]), atol=1e-6)
    assert template.colors.std(axis=0).min() > 0.01  # the colours vary over the face
    assert "model" in mesh.fields  # kept on the mesh for the next mode
    for field in ("template", "identity"):
        painted = paint(tiny, mesh, face, "blend", blend_field=field, blend_contrast=1.0)
        assert np.allclose(painted.colors, blend_colors(values[f"{field}_weights"]), atol=1e-6)
        assert field in painted.note and "power" not in painted.note
    sharp = paint(tiny, mesh, face, "blend", blend_contrast=8.0)
    assert np.allclose(sharp.colors, blend_colors(sharpen(values["template_weights"], 8.0)), atol=1e-6)
    assert "to the power 8" in sharp.note
    assert {"template", "identity"} <= set(blend_fields(tiny, mesh, face))


def test_a_blend_field_the_model_does_not_report_says_so(tiny, face_and_mesh):
    face, mesh = face_and_mesh
    painted = paint(tiny, mesh, face, "blend", blend_field="expression")
    if "expression" in blend_fields(tiny, mesh, face):
        assert painted.colors.std(axis=0).max() > 0
    else:
        assert "no expression blend weights" in painted.note and np.allclose(painted.colors, PLAIN_COLOR)


def test_errors_against_a_target_in_mm(tiny, face_and_mesh):
    face, mesh = face_and_mesh
    same = Target("same", "itself", mesh.vertices.astype(np.float64), mesh.faces)
    assert np.allclose(target_errors(mesh, same), 0.0, atol=1e-3)
    shifted = Target("shifted", "moved 0.02 along z", mesh.vertices + np.array([0.0, 0.0, 0.02]), mesh.faces)
    painted = paint(tiny, mesh, face, "error", target=shifted, error_max_mm=4.0)
    assert painted.errors is not None and painted.errors.max() <= 2.0 + 1e-3
    assert np.median(painted.errors) > 1.0  # most of the face is about 2 mm away
    assert "mm" in painted.note and "blue 0 .. red 4 mm" in painted.note
    points = Target("points", "its vertices", mesh.vertices[::2].astype(np.float64), None)
    errors = target_errors(mesh, points)
    assert np.allclose(errors[::2], 0.0) and errors.max() > 0
    assert f"error:{points.key}" in mesh.fields


def test_error_without_a_target_and_an_unknown_mode(tiny, face_and_mesh):
    face, mesh = face_and_mesh
    assert "no target" in paint(tiny, mesh, face, "error").note
    with pytest.raises(ValueError, match="colour mode"):
        paint(tiny, mesh, face, "rainbow")


def test_sharpened_weights_keep_the_dominant_field_and_sum_to_one():
    weights = np.array([[0.3, 0.25, 0.2, 0.15, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert np.allclose(sharpen(weights, 1.0), weights)
    sharp = sharpen(weights, 16.0)
    assert np.allclose(sharp.sum(axis=1), 1.0)
    assert sharp[0, 0] > 0.9 and np.array_equal(sharp.argmax(axis=1), weights.argmax(axis=1))
    assert np.allclose(sharp[1], 0.2)  # a tie stays a tie
