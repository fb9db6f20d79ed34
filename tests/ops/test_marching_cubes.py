"""Mesh extraction on analytic SDFs: accuracy, orientation, sphere mask and clipping,
coarse-to-fine == dense, and clean-up (the grid evaluation itself: tests/ops/test_sdf_grid.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from imface.ops.marching_cubes import EmptySurfaceError, dense_to_mesh, extract_mesh, remove_small_components
from tests.ops.meshes import hausdorff
from tests.ops.sdfs import CountingSDF, face_sdf, plane_sdf, sphere_sdf, torus_sdf


def voxel(resolution: int, bound: float = 1.0) -> float:
    return 2.0 * bound / (resolution - 1)


def test_dense_to_mesh_spacing_origin_and_orientation() -> None:
    bound, resolution = 2.0, 41
    axis = np.linspace(-bound, bound, resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    vertices, faces = dense_to_mesh(x - 0.3 + 0.0 * y * z, bound, 0.0)
    np.testing.assert_allclose(vertices[:, 0], 0.3, atol=1e-6)
    assert vertices[:, 1].min() == pytest.approx(-bound) and vertices[:, 2].max() == pytest.approx(bound)
    normals = trimesh.Trimesh(vertices, faces, process=False).face_normals
    assert np.all(normals[:, 0] > 0.999)  # toward increasing values
    with pytest.raises(EmptySurfaceError):
        dense_to_mesh(x * 0.0 + 1.0, bound, 0.0)


def test_dense_sphere_is_accurate_closed_and_outward() -> None:
    resolution = 64
    mesh = extract_mesh(sphere_sdf, resolution, coarse_to_fine=False)
    error = np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5)
    assert error.max() < 0.05 * voxel(resolution)
    assert mesh.is_watertight and mesh.euler_number == 2
    assert mesh.area == pytest.approx(np.pi, rel=0.01)
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.01)  # > 0: outward winding
    assert np.all((mesh.face_normals * mesh.triangles_center).sum(1) > 0)


def test_dense_torus_has_genus_one() -> None:
    resolution = 64
    mesh = extract_mesh(torus_sdf, resolution, coarse_to_fine=False)
    points = torch.from_numpy(mesh.vertices).float()
    assert torus_sdf(points).abs().max() < 0.05 * voxel(resolution)
    assert mesh.is_watertight and mesh.euler_number == 0
    assert mesh.area == pytest.approx(4 * np.pi**2 * 0.5 * 0.2, rel=0.02)


def test_level_other_than_zero() -> None:
    mesh = extract_mesh(sphere_sdf, 48, level=0.1)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 0.6, atol=0.05 * voxel(48))


def test_plane_clipped_to_sphere_is_a_disc() -> None:
    resolution = 128
    disc = extract_mesh(plane_sdf, resolution)
    np.testing.assert_allclose(disc.vertices[:, 2], 0.1, atol=1e-5)
    radius = np.sqrt(1 - 0.1**2)
    assert np.linalg.norm(disc.vertices[:, :2], axis=1).max() <= radius + 1e-6
    # The clip trims at most one cell off the rim.
    assert np.linalg.norm(disc.vertices[:, :2], axis=1).max() > radius - 2 * voxel(resolution)
    assert disc.area == pytest.approx(np.pi * radius**2, rel=0.03)
    assert np.all(disc.face_normals[:, 2] > 0.999)  # toward the viewer (+z, where the SDF grows)
    assert len(disc.split(only_watertight=False)) == 1


def test_plane_without_clip_keeps_the_cap() -> None:
    resolution = 64
    closed = extract_mesh(plane_sdf, resolution, clip_to_sphere=False)
    cap_area = 2 * np.pi * (1 + 0.1)  # the sphere below z = 0.1
    assert closed.is_watertight
    assert closed.area == pytest.approx(np.pi * 0.99 + cap_area, rel=0.03)
    below = closed.vertices[:, 2] < 0.1 - 2 * voxel(resolution)  # away from the rim, where sheet meets cap
    # The cap lies on the sphere: marching cubes sees max(sdf, |p| - 1), the solid cut by the ball.
    np.testing.assert_allclose(np.linalg.norm(closed.vertices[below], axis=1), 1.0, atol=0.05 * voxel(resolution))


@pytest.mark.parametrize(
    "sdf, resolution",
    [(sphere_sdf, 128), (torus_sdf, 96), (face_sdf, 128), (plane_sdf, 100), (face_sdf, 77)],
)
def test_coarse_to_fine_equals_dense(sdf, resolution: int) -> None:
    dense = extract_mesh(sdf, resolution, coarse_to_fine=False)
    fine = extract_mesh(sdf, resolution, coarse_to_fine=True, coarse_resolution=16)
    assert fine.metadata["level_resolutions"][-1] == resolution
    assert len(fine.metadata["level_resolutions"]) >= 3
    assert hausdorff(dense, fine) <= 0.5 * voxel(resolution)
    # Every sign change lies in the refined band, so for these smooth SDFs the grids agree
    # wherever marching cubes looks and the meshes are identical.
    np.testing.assert_array_equal(fine.faces, dense.faces)
    np.testing.assert_array_equal(fine.vertices, dense.vertices)


def test_coarse_to_fine_evaluates_far_fewer_points() -> None:
    dense_counter, fine_counter = CountingSDF(sphere_sdf), CountingSDF(sphere_sdf)
    dense = extract_mesh(dense_counter, 128, coarse_to_fine=False, device="cpu")
    fine = extract_mesh(fine_counter, 128, coarse_to_fine=True, device="cpu")
    assert dense.metadata["points_evaluated"] == dense_counter.points
    assert fine.metadata["points_evaluated"] == fine_counter.points
    # Dense evaluates every grid point inside the unit sphere.
    assert dense_counter.points == pytest.approx(4 / 3 * np.pi / voxel(128) ** 3, rel=0.01)
    # About 27 % with the default band (2 coarse diagonals); a narrower band saves more.
    assert fine_counter.points < 0.3 * dense_counter.points
    narrow_counter = CountingSDF(sphere_sdf)
    narrow = extract_mesh(narrow_counter, 128, band_factor=1.0, device="cpu")
    assert narrow_counter.points < 0.2 * dense_counter.points
    np.testing.assert_array_equal(narrow.faces, dense.faces)
    # The face sheet, at 256^3, is where the saving counts.
    face_counter = CountingSDF(face_sdf)
    extract_mesh(face_counter, 256, coarse_to_fine=True, device="cpu")
    assert face_counter.points < 0.15 * 4 / 3 * np.pi / voxel(256) ** 3


def test_small_components_are_dropped() -> None:
    def two_spheres(points: torch.Tensor) -> torch.Tensor:
        big = (points - torch.tensor([0.3, 0.0, 0.0])).norm(dim=1) - 0.4
        small = (points - torch.tensor([-0.6, 0.0, 0.0])).norm(dim=1) - 0.06
        return torch.minimum(big, small)

    both = extract_mesh(two_spheres, 64, min_component_fraction=0.0)
    big_only = extract_mesh(two_spheres, 64, min_component_fraction=0.05)
    assert len(both.split(only_watertight=False)) == 2
    assert len(big_only.split(only_watertight=False)) == 1
    assert big_only.vertices[:, 0].min() > -0.2


def test_remove_small_components_matches_trimesh_split() -> None:
    meshes = [trimesh.creation.icosphere(subdivisions, radius=1.0) for subdivisions in (1, 2, 3)]
    for offset, mesh in enumerate(meshes):
        mesh.apply_translation([3.0 * offset, 0, 0])
    merged = trimesh.util.concatenate(meshes)
    sizes = sorted(len(m.faces) for m in merged.split(only_watertight=False))  # naive reference
    for fraction in (0.0, 0.05, 0.2, 0.5):
        vertices, faces = remove_small_components(merged.vertices, merged.faces, fraction)
        kept = trimesh.Trimesh(vertices, faces, process=False)
        expected = [s for s in sizes if s >= fraction * len(merged.faces)]
        assert sorted(len(m.faces) for m in kept.split(only_watertight=False)) == expected
        assert len(vertices) == len(np.unique(faces))  # unused vertices removed
    vertices, faces = remove_small_components(merged.vertices, merged.faces, 0.0, min_faces=100)
    assert len(faces) == sum(s for s in sizes if s >= 100)


def test_nn_module_sdf_and_chunking_do_not_change_the_mesh() -> None:
    class Shifted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.centre = torch.nn.Parameter(torch.tensor([0.1, 0.0, 0.0]))

        def forward(self, points: torch.Tensor) -> torch.Tensor:
            return (points - self.centre).norm(dim=1) - 0.4

    module = Shifted()
    small_chunks = extract_mesh(module, 48, chunk_size=333)
    big_chunks = extract_mesh(module, 48, chunk_size=1 << 20, device="cpu")
    np.testing.assert_array_equal(small_chunks.faces, big_chunks.faces)
    np.testing.assert_allclose(small_chunks.vertices, big_chunks.vertices, atol=1e-7)
    assert module.centre.grad is None


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    mesh = extract_mesh(sphere_sdf, 40, progress=True, device="cpu")
    assert "pt" in capsys.readouterr().err
    assert mesh.metadata["points_evaluated"] > 0


def test_empty_surface_is_an_error() -> None:
    with pytest.raises(EmptySurfaceError):
        extract_mesh(lambda p: p[:, 0] * 0.0 + 1.0, 32)
    with pytest.raises(EmptySurfaceError):
        extract_mesh(lambda p: p[:, 0] * 0.0 - 1.0, 32)  # only the cap: nothing left after clipping


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sdf() -> None:
    centre = torch.tensor([0.0, 0.1, 0.0], device="cuda")
    mesh = extract_mesh(lambda p: (p - centre).norm(dim=1) - 0.4, 64)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices - [0, 0.1, 0], axis=1), 0.4, atol=0.05 * voxel(64))
