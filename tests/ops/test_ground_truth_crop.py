"""The evaluation crop gives any reconstruction its ground truth's region."""
from __future__ import annotations

import igl
import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.crop import crop_to_sphere, remove_unused_vertices
from imface.ops.heightfield import delaunay_heightfield
from imface.ops.visibility import remove_hidden_surface
from tests.baselines import identity_height, grid

IDENTITY = np.array([0.3, -0.5, 0.2, 0.8, -0.4, 0.6])


def scan_like(step: float) -> tuple[np.ndarray, np.ndarray]:
    """A front scan past the crop sphere, with a hidden 'mouth cavity' patch 8 mm behind the lips."""
    xy, faces = grid(step, (-1.2, 1.2), (-1.3, 1.1))
    vertices = np.column_stack([xy, identity_height(xy[:, 0], xy[:, 1], IDENTITY)])
    cavity_xy, cavity_faces = grid(0.02, (-0.14, 0.14), (-0.38, -0.28))
    cavity = np.column_stack([cavity_xy, identity_height(cavity_xy[:, 0], cavity_xy[:, 1], IDENTITY) - 0.08])
    return np.concatenate([vertices, cavity]), np.concatenate([faces, cavity_faces + len(vertices)])


def full_head_like(step: float) -> tuple[np.ndarray, np.ndarray]:
    """The same face on another grid, plus a back-of-head shell behind it (as a full 3DMM mesh has)."""
    face_vertices, face_faces = scan_like(step)
    xy, faces = grid(step, (-0.9, 0.9), (-0.9, 0.9))
    back = np.column_stack([xy, -0.75 + 0.2 * (xy[:, 0] ** 2 + xy[:, 1] ** 2)])
    return np.concatenate([face_vertices, back]), np.concatenate([face_faces, faces[:, ::-1] + len(face_vertices)])


def xy_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    corners = vertices[faces][:, :, :2]
    edge_1, edge_2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return float(0.5 * np.abs(edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]).sum())


def surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    corners = vertices[faces]
    return float(0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum())


def test_matches_the_pipeline_sequence_in_millimetres():
    vertices, faces = scan_like(0.04)
    # Naive reference: the pipeline's own steps, in mm as preprocess_scan runs them.
    mm_vertices, mm_faces = crop_to_sphere(vertices * 100.0, faces, np.zeros(3), 100.0)
    mm_vertices, mm_faces, _ = remove_hidden_surface(mm_vertices, mm_faces, eps=0.01)
    reference_vertices, reference_faces = remove_unused_vertices(mm_vertices / 100.0, delaunay_heightfield(mm_vertices))
    cropped_vertices, cropped_faces = crop_like_ground_truth(vertices, faces)
    assert cropped_vertices.shape == reference_vertices.shape
    np.testing.assert_allclose(cropped_vertices, reference_vertices, atol=1e-12)
    # Faces may differ where grid points are co-circular (Delaunay ties); the surface may not.
    assert abs(xy_area(cropped_vertices, cropped_faces) - xy_area(reference_vertices, reference_faces)) < 1e-9
    assert abs(surface_area(cropped_vertices, cropped_faces) / surface_area(reference_vertices, reference_faces) - 1) < 1e-3


def test_result_is_a_visible_height_field_inside_the_sphere():
    vertices, faces = crop_like_ground_truth(*scan_like(0.04))
    assert np.linalg.norm(vertices, axis=1).max() <= 1.0 + 1e-9
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(normals[:, 2] > 0)
    # The cavity lay 8 mm behind the lips: none of it survives.
    lips = (np.abs(vertices[:, 0]) < 0.12) & (vertices[:, 1] > -0.37) & (vertices[:, 1] < -0.29)
    surface = identity_height(vertices[lips, 0], vertices[lips, 1], IDENTITY)
    assert np.abs(vertices[lips, 2] - surface).max() < 1e-9


def test_reconstruction_gets_the_ground_truth_region():
    truth_vertices, truth_faces = crop_like_ground_truth(*scan_like(0.03))
    recon_vertices, recon_faces = crop_like_ground_truth(*full_head_like(0.045))
    # Same footprint: boundary radius and x-y area agree, and every part lies on the truth.
    truth_radius = np.linalg.norm(truth_vertices[:, :2], axis=1).max()
    recon_radius = np.linalg.norm(recon_vertices[:, :2], axis=1).max()
    assert abs(truth_radius - recon_radius) < 0.01
    assert abs(xy_area(truth_vertices, truth_faces) / xy_area(recon_vertices, recon_faces) - 1.0) < 0.01
    assert recon_vertices[:, 2].min() > truth_vertices[:, 2].min() - 0.01  # the back shell is gone
    squared, _, _ = igl.point_mesh_squared_distance(recon_vertices, truth_vertices, truth_faces)
    assert np.sqrt(squared).max() < 0.005  # tessellation differences only (0.5 mm)
    # Without the crop the back shell would be scored against the front face.
    uncropped, _ = full_head_like(0.045)
    assert cKDTree(truth_vertices).query(uncropped)[0].max() > 0.3


def test_cropping_a_ground_truth_again_changes_it_negligibly():
    vertices, faces = crop_like_ground_truth(*scan_like(0.04))
    again_vertices, again_faces = crop_like_ground_truth(vertices, faces)
    assert abs(len(again_vertices) - len(vertices)) <= 0.01 * len(vertices)
    assert cKDTree(vertices).query(again_vertices)[0].max() < 1e-9
    assert abs(xy_area(again_vertices, again_faces) / xy_area(vertices, faces) - 1.0) < 1e-6


def test_mesh_outside_the_sphere_is_refused():
    vertices, faces = scan_like(0.1)
    with pytest.raises(ValueError, match="no surface inside"):
        crop_like_ground_truth(vertices + np.array([0.0, 0.0, 5.0]), faces)
