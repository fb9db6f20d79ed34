"""Headless rendering: silhouettes, shading, views, landmarks, colours, and no leaks.

These tests need EGL (Mesa's libEGL): it is part of our setup, so they fail rather than skip
when it is missing.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import moderngl
import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.ops import render
from imface.ops.camera import Camera
from imface.ops.render import render_mesh

WHITE = 255


def _sphere(subdivisions: int = 4) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)


def _covered(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ from the white background."""
    return (image < WHITE).any(axis=2)


def _luminance(pixel: np.ndarray) -> float:
    return float(pixel.astype(np.float64).mean())


def test_sphere_front_is_a_disc_of_expected_radius() -> None:
    sphere = _sphere()
    margin, size = 0.1, 160
    image = render_mesh(sphere.vertices, sphere.faces, size=(size, size), margin=margin, supersample=1)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    # The unit sphere's box fills (1 - 2 margin) of the image, so its radius is that many half-widths.
    radius_px = (1 - 2 * margin) * size / 2
    area = _covered(image).sum()
    assert abs(area - np.pi * radius_px**2) / (np.pi * radius_px**2) < 0.03
    rows, cols = np.nonzero(_covered(image))
    assert abs(rows.mean() - size / 2) < 1.0 and abs(cols.mean() - size / 2) < 1.0


def test_headlight_makes_the_centre_brighter_than_the_rim() -> None:
    sphere = _sphere()
    image = render_mesh(sphere.vertices, sphere.faces, size=(128, 128), margin=0.1)
    radius_px = 0.8 * 64
    centre = image[64, 64]
    near_rim = image[64, int(64 + 0.95 * radius_px)]
    assert _luminance(centre) > _luminance(near_rim) + 60


def test_rendering_is_deterministic() -> None:
    sphere = _sphere(3)
    marks = sphere.vertices[:4]
    first = render_mesh(sphere.vertices, sphere.faces, points=marks, size=(96, 80))
    second = render_mesh(sphere.vertices, sphere.faces, points=marks, size=(96, 80))
    assert first.shape == (80, 96, 3)
    assert np.array_equal(first, second)


def _silhouette_aspect(image: np.ndarray) -> float:
    rows, cols = np.nonzero(_covered(image))
    return (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1)


def test_side_view_shows_the_depth_axis_horizontally() -> None:
    ellipsoid = _sphere(3)
    ellipsoid.vertices *= [2.0, 1.0, 0.5]  # wide in x, shallow in z
    front = render_mesh(ellipsoid.vertices, ellipsoid.faces, view="front", size=(128, 128))
    side = render_mesh(ellipsoid.vertices, ellipsoid.faces, view="side", size=(128, 128))
    assert _silhouette_aspect(front) == pytest.approx(2.0, rel=0.08)
    assert _silhouette_aspect(side) == pytest.approx(0.5, rel=0.08)


def test_fit_to_gives_several_meshes_one_framing() -> None:
    big, small = _sphere(3), _sphere(3)
    small.vertices *= 0.5
    shared = big.vertices
    big_img = render_mesh(big.vertices, big.faces, fit_to=shared, size=(128, 128), supersample=1)
    small_img = render_mesh(small.vertices, small.faces, fit_to=shared, size=(128, 128), supersample=1)
    alone = render_mesh(small.vertices, small.faces, size=(128, 128), supersample=1)
    assert _covered(small_img).sum() / _covered(big_img).sum() == pytest.approx(0.25, rel=0.05)
    assert _covered(alone).sum() == pytest.approx(_covered(big_img).sum(), rel=0.02)


def test_landmarks_are_drawn_in_their_colour_and_hidden_behind_the_surface() -> None:
    sphere = _sphere()
    green = (0.0, 1.0, 0.0)
    on_front = [0.0, 0.0, 1.0]
    just_behind = [0.4, 0.3, np.sqrt(1 - 0.25) - 0.01]  # 0.01 under the surface: still visible
    on_back = [0.0, -0.5, -np.sqrt(0.75)]  # covered by the whole sphere
    marks = np.array([on_front, just_behind, on_back])
    camera = Camera.framing(sphere.vertices, "front", size=(128, 128))
    image = render_mesh(sphere.vertices, sphere.faces, points=marks, point_color=green, camera=camera)
    cols, rows = camera.project(marks)[:, :2].astype(int).T
    for col, row in zip(cols[:2], rows[:2]):
        r, g, b = image[row, col].astype(int)
        assert g > 200 and r < 60 and b < 60
    r, g, b = image[rows[2], cols[2]].astype(int)
    assert abs(r - g) < 10 and abs(g - b) < 10  # grey surface, no green dot


def test_per_point_colours_and_default_framing_includes_points() -> None:
    sphere = _sphere(2)
    marks = np.array([[3.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])  # far outside the sphere
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = render_mesh(sphere.vertices, sphere.faces, points=marks, point_color=colours, size=(128, 128))
    camera = Camera.framing(np.concatenate([sphere.vertices, marks]), "front", size=(128, 128))
    (c0, r0), (c1, r1) = camera.project(marks)[:, :2].astype(int)
    assert image[r0, c0, 0] > 200 and image[r0, c0, 2] < 60
    assert image[r1, c1, 2] > 200 and image[r1, c1, 0] < 60


def test_vertex_colours_tint_the_surface() -> None:
    sphere = _sphere(3)
    red = np.tile([1.0, 0.0, 0.0], (len(sphere.vertices), 1))
    image = render_mesh(sphere.vertices, sphere.faces, vertex_colors=red, size=(96, 96)).astype(int)
    surface = image[_covered(image)]
    assert np.median(surface[:, 0] - surface[:, 1]) > 100
    assert np.median(surface[:, 0] - surface[:, 2]) > 100
    red_u8 = render_mesh(sphere.vertices, sphere.faces, vertex_colors=(red * 255).astype(np.uint8),
                         size=(96, 96))
    assert np.array_equal(red_u8, image.astype(np.uint8))


def test_back_faces_get_a_different_tint() -> None:
    sphere = _sphere(3)
    front_half = sphere.faces[sphere.triangles_center[:, 2] > 0]  # an open bowl facing +z
    outside = render_mesh(sphere.vertices, front_half, view="front", size=(96, 96)).astype(int)
    inside = render_mesh(sphere.vertices, front_half, view=(180.0, 0.0), size=(96, 96)).astype(int)
    outside_px, inside_px = outside[_covered(outside)], inside[_covered(inside)]
    assert abs(np.median(outside_px[:, 2] - outside_px[:, 0])) < 5  # grey
    assert np.median(inside_px[:, 2] - inside_px[:, 0]) > 20  # blue-grey inside


def test_crease_angle_keeps_box_faces_flat() -> None:
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    flat = render_mesh(box.vertices, box.faces, size=(64, 64), margin=0.2)
    smooth = render_mesh(box.vertices, box.faces, size=(64, 64), margin=0.2, crease_angle=180.0)
    inner = (slice(24, 40), slice(24, 40))  # well inside the front face
    assert flat[inner].astype(float).std() < 1.0
    assert smooth[inner].astype(float).std() > 3.0


def test_unlit_shows_colours_as_given() -> None:
    sphere = _sphere(3)
    colour = np.array([0.2, 0.6, 0.4])
    colours = np.tile(colour, (len(sphere.vertices), 1))
    image = render_mesh(sphere.vertices, sphere.faces, vertex_colors=colours, light="unlit", size=(64, 64))
    assert np.allclose(image[32, 32], colour * 255, atol=1.5)


def test_point_cloud_without_faces_renders_dots() -> None:
    cloud = _sphere(3).vertices
    image = render_mesh(cloud, None, size=(128, 128))
    covered = _covered(image).mean()
    assert 0.02 < covered < 0.5  # dots, not a filled disc


def test_bad_inputs_raise_imface_errors() -> None:
    sphere = _sphere(1)
    bad = sphere.vertices.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ImfaceError, match="NaN"):
        render_mesh(bad, sphere.faces, size=(32, 32))
    with pytest.raises(ImfaceError, match="outside"):
        render_mesh(sphere.vertices, sphere.faces + len(sphere.vertices), size=(32, 32))
    with pytest.raises(ImfaceError, match="unknown view"):
        render_mesh(sphere.vertices, sphere.faces, view="top-down", size=(32, 32))
    with pytest.raises(ImfaceError, match="nothing to frame"):
        render_mesh(np.zeros((0, 3)), None, size=(32, 32))


def test_missing_egl_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_egl(**_: object) -> None:
        raise RuntimeError("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(render, "_gl_state", None)
    monkeypatch.setattr(moderngl, "create_context", no_egl)
    sphere = _sphere(1)
    with pytest.raises(ImfaceError, match="headless rendering needs EGL.*libEGL.so.1"):
        render_mesh(sphere.vertices, sphere.faces, size=(32, 32))


def test_rendering_from_threads_matches_the_main_thread() -> None:
    sphere = _sphere(2)
    expected = render_mesh(sphere.vertices, sphere.faces, size=(48, 48))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: render_mesh(sphere.vertices, sphere.faces, size=(48, 48)), range(4)))
    assert all(np.array_equal(result, expected) for result in results)


def test_a_forked_child_gets_an_error_instead_of_a_hang() -> None:
    sphere = _sphere(1)
    render_mesh(sphere.vertices, sphere.faces, size=(16, 16))  # the parent has a context now
    pid = os.fork()
    if pid == 0:  # child: must raise at once, never touch the inherited context
        try:
            render_mesh(sphere.vertices, sphere.faces, size=(16, 16))
            code = 1
        except ImfaceError as err:
            code = 0 if "spawn" in str(err) else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def test_many_renders_do_not_leak() -> None:
    sphere = _sphere(3)
    for _ in range(10):  # warm up the context and allocator
        render_mesh(sphere.vertices, sphere.faces, points=sphere.vertices[:3], size=(256, 256))
    before = _resident_bytes()
    for _ in range(100):
        render_mesh(sphere.vertices, sphere.faces, points=sphere.vertices[:3], size=(256, 256))
    # A leaked 512x512 colour + depth framebuffer alone would add 2 MB per frame.
    assert _resident_bytes() - before < 40 * 2**20
