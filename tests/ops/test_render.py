"""Headless rendering: silhouettes, shading, views, landmarks, colours, and no leaks.

These tests need EGL (Mesa's libEGL): it is part of our setup, so they fail rather than skip
when it is missing.
"""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.ops import render
from imface.ops.render import Camera, colormap, corner_normals, render_mesh, vertex_normals, view_rotation

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


def test_view_rotations_are_proper_and_side_looks_along_minus_x() -> None:
    for view in ("front", "side", "three_quarter", (123.0, -30.0)):
        rotation = view_rotation(view)
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        assert rotation[0, 1] == pytest.approx(0.0)  # the image stays upright
    assert np.allclose(view_rotation("front"), np.eye(3))
    side = view_rotation("side")
    assert np.allclose(side[2], [1, 0, 0])  # the camera sits on +x
    assert (side @ [0, 0, 1])[0] < 0  # so a face (pointing +z) looks to the image's left


def test_camera_framing_matches_a_hand_computed_projection() -> None:
    box = np.array([[-1.0, -2.0, 0.0], [3.0, 2.0, 5.0]])
    camera = Camera.framing(box, "front", size=(100, 50), margin=0.1)
    # Height limits: 4 units must fill 0.8 * 50 = 40 px, so 10 px per unit; centre (1, 0).
    assert camera.pixels_per_unit == pytest.approx(10.0)
    projected = camera.project(np.array([[1.0, 0.0, 0.0], [-1.0, -2.0, 0.0], [3.0, 2.0, 0.0]]))
    assert np.allclose(projected[:, :2], [[50, 25], [30, 45], [70, 5]])


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


def test_vertex_normals_match_a_naive_loop_and_trimesh() -> None:
    mesh = trimesh.creation.capsule(height=1.0, radius=0.5, count=[8, 8])
    verts = mesh.vertices
    expected = np.zeros_like(verts)
    for face in mesh.faces:  # naive reference: each face's unit normal times its corner angle
        a, b, c = verts[face]
        n = np.cross(b - a, c - a)
        n /= np.linalg.norm(n)
        for i in range(3):
            here, nxt, prv = verts[face[i]], verts[face[(i + 1) % 3]], verts[face[(i + 2) % 3]]
            u, w = nxt - here, prv - here
            angle = np.arccos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w))
            expected[face[i]] += angle * n
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = vertex_normals(verts, mesh.faces)
    assert np.allclose(got, expected, atol=1e-12)
    assert np.allclose(got, mesh.vertex_normals, atol=1e-9)  # trimesh weights by angle too


def test_vertex_normals_ignore_degenerate_faces() -> None:
    verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 5, 5]])
    faces = np.array([[0, 1, 2], [0, 1, 3]])  # the second face has no area
    normals = vertex_normals(verts, faces)
    assert np.allclose(normals[:3], [0, 0, 1])
    assert np.allclose(normals[3:], 0.0)  # only a degenerate face / no face at all


def _naive_corner_normals(verts: np.ndarray, faces: np.ndarray, crease_angle: float) -> np.ndarray:
    """Reference: loop over corners and over the faces that share the corner's vertex."""
    mesh = trimesh.Trimesh(verts, faces, process=False)
    normals, angles = mesh.face_normals, mesh.face_angles
    out = np.zeros((len(faces), 3, 3))
    for f, face in enumerate(faces):
        for c, vertex in enumerate(face):
            total = np.zeros(3)
            for g in np.nonzero((faces == vertex).any(axis=1))[0]:
                if normals[g] @ normals[f] >= np.cos(np.radians(crease_angle)) - 1e-9:
                    total += angles[g, list(faces[g]).index(vertex)] * normals[g]
            out[f, c] = total / np.linalg.norm(total)
    return out


@pytest.mark.parametrize("crease_angle", [10.0, 40.0, 100.0, 180.0])
def test_corner_normals_match_a_naive_loop(crease_angle: float) -> None:
    shapes = [trimesh.creation.cylinder(1.0, 2.0, sections=12), trimesh.creation.box((1.0, 2.0, 3.0)),
              trimesh.creation.icosphere(1), trimesh.creation.cone(1.0, 2.0, sections=10)]
    for shape in shapes:
        expected = _naive_corner_normals(shape.vertices, shape.faces, crease_angle)
        for max_pairs in (120, 4_000_000):  # small chunks exercise the chunking
            got = corner_normals(shape.vertices, shape.faces, crease_angle, max_pairs=max_pairs)
            assert np.allclose(got, expected, atol=1e-9)


def test_corner_normals_split_box_edges_and_keep_spheres_smooth() -> None:
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    flat = corner_normals(box.vertices, box.faces, crease_angle=40.0)
    assert np.allclose(flat, box.face_normals[:, None, :].repeat(3, axis=1), atol=1e-12)
    sphere = _sphere(2)
    smooth = corner_normals(sphere.vertices, sphere.faces, crease_angle=40.0)
    assert np.allclose(smooth, vertex_normals(sphere.vertices, sphere.faces)[sphere.faces])


def test_corner_normals_leave_huge_fans_smooth() -> None:
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    rim = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
    verts = np.vstack([[0.0, 0.0, 1.0], rim])  # a cone: apex 0, 40 faces around it
    faces = np.stack([np.zeros(40, int), 1 + np.arange(40), 1 + (np.arange(40) + 1) % 40], axis=1)
    apex_smooth = vertex_normals(verts, faces)[0]
    capped = corner_normals(verts, faces, crease_angle=10.0, max_pairs=100)  # 40**2 > 100
    assert np.allclose(capped[:, 0], apex_smooth)
    split = corner_normals(verts, faces, crease_angle=10.0)
    assert not np.allclose(split[:, 0], apex_smooth)


def test_colormap_matches_matplotlib() -> None:
    import matplotlib

    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])
    colours = colormap(values, vmin=0.0, vmax=1.0, name="turbo")
    reference = matplotlib.colormaps["turbo"](np.clip(values[:5], 0, 1))[:, :3]
    assert np.allclose(colours[:5], reference)
    assert np.allclose(colours[5], [0.6, 0.6, 0.6])
    auto = colormap(np.array([2.0, 4.0]), name="viridis")  # range from the data
    assert np.allclose(auto, matplotlib.colormaps["viridis"]([0.0, 1.0])[:, :3])
    with pytest.raises(ImfaceError):
        colormap(values, name="no-such-map")


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
    import moderngl

    def no_egl(**_: object) -> None:
        raise RuntimeError("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(render, "_gl_state", None)
    monkeypatch.setattr(moderngl, "create_context", no_egl)
    sphere = _sphere(1)
    with pytest.raises(ImfaceError, match="headless rendering needs EGL.*libEGL.so.1"):
        render_mesh(sphere.vertices, sphere.faces, size=(32, 32))


def test_rendering_from_threads_matches_the_main_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    sphere = _sphere(2)
    expected = render_mesh(sphere.vertices, sphere.faces, size=(48, 48))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: render_mesh(sphere.vertices, sphere.faces, size=(48, 48)), range(4)))
    assert all(np.array_equal(result, expected) for result in results)


def test_a_forked_child_gets_an_error_instead_of_a_hang() -> None:
    import os

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
