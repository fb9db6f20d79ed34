"""Headless pictures of meshes, point clouds and landmarks (OpenGL through Mesa's EGL).

Rendering needs no display and no GPU: ``moderngl`` opens a standalone EGL context, which Mesa
serves with llvmpipe on a CPU-only machine and with the GPU driver elsewhere. There is no silent
fallback to another renderer: without EGL, rendering raises an ImfaceError that says so.

The camera (views, framing) lives in :mod:`imface.ops.camera`, colours in
:mod:`imface.ops.colors` and the shading normals in :mod:`imface.ops.normals`.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import numpy as np

from imface.errors import ImfaceError
from imface.ops.camera import Camera, as_points
from imface.ops.colors import as_colors
from imface.ops.normals import corner_normals

#: Lights as (direction in camera space toward the light, weight). "headlight" shines from the
#: camera; "studio" adds a key light from the upper left to a weaker headlight.
LIGHTS: dict[str, tuple[tuple[tuple[float, float, float], float], ...]] = {
    "headlight": (((0.0, 0.0, 1.0), 1.0),),
    "studio": (((-0.45, 0.55, 0.70), 0.75), ((0.0, 0.0, 1.0), 0.40)),
    "unlit": (),
}
DEFAULT_MATERIAL = (0.74, 0.74, 0.74)
# Back faces (inside of an open scan, or a hole) are tinted blue-grey so they stand out.
BACK_FACE_TINT = (0.66, 0.74, 0.95)
AMBIENT, SPECULAR, SHININESS = 0.22, 0.12, 24.0


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray | None,
    *,
    vertex_colors: np.ndarray | None = None,
    view: str | tuple[float, float] = "front",
    size: tuple[int, int] = (512, 512),
    points: np.ndarray | None = None,
    point_color: Sequence[float] | np.ndarray = (0.9, 0.1, 0.1),
    point_size: float | None = None,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    fit_to: np.ndarray | None = None,
    light: str = "headlight",
    color: Sequence[float] = DEFAULT_MATERIAL,
    camera: Camera | None = None,
    margin: float = 0.06,
    crease_angle: float = 40.0,
    supersample: int = 2,
) -> np.ndarray:
    """Render a mesh (or a point cloud) with optional marked points; returns (H, W, 3) uint8.

    vertices: (V, 3) float, any unit. faces: (F, 3) int; None or (0, 3) draws the vertices as
        a shaded point cloud instead.
    vertex_colors: (V, 3) float in [0, 1] (or uint8); default ``color`` everywhere.
    view: a name in VIEWS or (azimuth, elevation) degrees. size: (width, height) pixels.
    points: (P, 3) float, e.g. landmarks, drawn as dots with a dark rim on top of the surface;
        they stay visible up to about two dot radii behind it. point_color: (3,) or (P, 3).
    point_size: dot diameter in output pixels (default ~1.6% of the image's shorter side).
    fit_to: (N, 3) float, the points to frame (default: vertices and points), so several
        renders can share one framing. camera: overrides view/size/fit_to/margin entirely.
    light: "headlight", "studio" or "unlit" (colours as given, e.g. for heatmaps).
    crease_angle: degrees; edges sharper than this are shaded flat (see corner_normals).
    supersample: render this many times larger and average down (antialiasing).
    """
    verts = as_points(vertices, "vertices")
    tris = _as_faces(faces, len(verts))
    marks = None if points is None else as_points(points, "points")
    if light not in LIGHTS:
        raise ImfaceError(None, f"unknown light {light!r}; choose one of {', '.join(LIGHTS)}")
    if camera is None:
        framed = fit_to
        if framed is None:  # frame everything drawn, so stray landmarks are seen too
            framed = verts if marks is None else np.concatenate([verts, marks])
        camera = Camera.framing(framed, view, size, margin)
    width, height = camera.size
    # Supersampling beyond 8192 pixels a side would exceed what GL drivers allow.
    ss = max(1, min(int(supersample), 8192 // max(width, height)))
    base = as_colors(vertex_colors, len(verts), color)
    mark_colors = None if marks is None else as_colors(np.asarray(point_color), len(marks), None)
    dot = point_size if point_size is not None else max(4.0, 0.016 * min(width, height))
    cam_verts = camera.to_camera(verts)
    corners = None  # (3F, 9) float32 per triangle corner: camera position, normal, colour
    if len(tris):
        corners = np.empty((len(tris), 3, 9), dtype=np.float32)
        corners[:, :, 0:3] = cam_verts.astype(np.float32)[tris]
        corners[:, :, 3:6] = corner_normals(verts, tris, crease_angle) @ camera.rotation.T
        corners[:, :, 6:9] = base[tris]
        corners = corners.reshape(-1, 9)
    image = _draw(
        camera_vertices=cam_verts,
        corners=corners,
        colors=base,
        camera_points=None if marks is None else camera.to_camera(marks),
        point_colors=mark_colors,
        pixels_per_unit=camera.pixels_per_unit * ss,
        size=(width * ss, height * ss),
        point_diameter=dot * ss,
        cloud_diameter=max(1.5, 0.005 * min(width, height)) * ss,
        background=tuple(float(c) for c in background),
        light=light,
    )
    return _downsample(image, ss)


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """(H*f, W*f, 3) uint8 -> (H, W, 3) uint8 by box averaging."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image.reshape(h, factor, w, factor, 3).astype(np.float32)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _as_faces(faces: Any, n_vertices: int) -> np.ndarray:
    if faces is None:
        return np.zeros((0, 3), dtype=np.int64)
    tris = np.asarray(faces)
    if tris.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if tris.ndim != 2 or tris.shape[1] != 3 or not np.issubdtype(tris.dtype, np.integer):
        raise ImfaceError(None, f"faces must be an (F, 3) integer array, got {tris.dtype} {tris.shape}")
    if tris.min() < 0 or tris.max() >= n_vertices:
        raise ImfaceError(None, f"faces index vertices outside 0..{n_vertices - 1}")
    return tris.astype(np.int64)

# ---------------------------------------------------------------------------------------------
# OpenGL (moderngl on EGL). One context per process, created on first use; every render makes
# and releases its own buffers and framebuffer, so rendering many frames does not leak.

_SHADE_GLSL = """
uniform vec3 light_dirs[2];
uniform float light_weights[2];
uniform float ambient;
uniform float specular;
vec3 shade(vec3 base, vec3 n) {
    float diffuse = 0.0;
    float highlight = 0.0;
    for (int i = 0; i < 2; ++i) {
        vec3 l = normalize(light_dirs[i]);
        diffuse += light_weights[i] * max(dot(n, l), 0.0);
        vec3 h = normalize(l + vec3(0.0, 0.0, 1.0));  // Blinn half vector; the eye is at +z
        highlight += light_weights[i] * pow(max(dot(n, h), 0.0), %(shininess)s);
    }
    return base * (ambient + (1.0 - ambient) * diffuse) + specular * highlight;
}
""" % {"shininess": f"{SHININESS:.1f}"}

_MESH_VS = """#version 330
uniform vec2 scale;   // camera units -> NDC
uniform vec2 depth;   // camera z of the NDC centre, half range
in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    gl_Position = vec4(in_position.xy * scale, -(in_position.z - depth.x) / depth.y, 1.0);
    v_normal = in_normal;
    v_color = in_color;
}
"""
_MESH_FS = "#version 330\n" + _SHADE_GLSL + """
uniform vec3 back_tint;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
void main() {
    vec3 n = length(v_normal) > 1e-12 ? normalize(v_normal) : vec3(0.0, 0.0, 1.0);
    vec3 base = v_color;
    if (!gl_FrontFacing) { n = -n; base *= back_tint; }
    f_color = vec4(shade(base, n), 1.0);
}
"""
_POINT_VS = """#version 330
uniform vec2 scale;
uniform vec2 depth;
uniform float diameter;
uniform float bias;   // NDC depth toward the viewer, so dots just behind the surface still show
in vec3 in_position;
in vec3 in_color;
out vec3 v_color;
void main() {
    float z = -(in_position.z - depth.x) / depth.y - bias;
    gl_Position = vec4(in_position.xy * scale, max(z, -1.0), 1.0);
    gl_PointSize = diameter;
    v_color = in_color;
}
"""
_POINT_FS = "#version 330\n" + _SHADE_GLSL + """
uniform int sphere;   // 1: shade the dot like a small sphere (point clouds); 0: flat dot with a rim
in vec3 v_color;
out vec4 f_color;
void main() {
    vec2 d = gl_PointCoord * 2.0 - 1.0;
    float r2 = dot(d, d);
    if (r2 > 1.0) discard;
    if (sphere == 1) {
        f_color = vec4(shade(v_color, vec3(d.x, -d.y, sqrt(1.0 - r2))), 1.0);
    } else {
        f_color = vec4(r2 > 0.55 ? v_color * 0.35 : v_color, 1.0);
    }
}
"""


class _GLState:
    """The process's EGL context and compiled programs."""

    def __init__(self) -> None:
        try:
            import moderngl  # here, not at the top: a missing EGL stack is reported as an ImfaceError

            self.ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as err:  # ImportError, missing libEGL, no EGL device, ...
            raise ImfaceError(None, f"headless rendering needs EGL (Mesa libEGL): {err}") from err
        self.pid = os.getpid()
        self.mesh = self.ctx.program(vertex_shader=_MESH_VS, fragment_shader=_MESH_FS)
        self.point = self.ctx.program(vertex_shader=_POINT_VS, fragment_shader=_POINT_FS)


_gl_state: _GLState | None = None
_gl_lock = threading.Lock()


def _check_not_forked() -> None:
    """Refuse to render in a child forked after the parent rendered: Mesa would hang there.

    GL state (and llvmpipe's worker threads) do not survive fork(), and a fresh context in the
    child shares the broken driver state, so the only safe answer is to say so.
    """
    if _gl_state is not None and _gl_state.pid != os.getpid():
        raise ImfaceError(
            None,
            "headless rendering cannot run in a process forked after its parent rendered "
            "(EGL does not survive fork); start workers with multiprocessing's 'spawn' method",
        )


def _gl() -> _GLState:
    global _gl_state
    if _gl_state is None:
        _gl_state = _GLState()
    return _gl_state


def _set_light(program: Any, light: str) -> None:
    lights = list(LIGHTS[light]) + [((0.0, 0.0, 1.0), 0.0)] * 2
    program["light_dirs"].value = [lights[0][0], lights[1][0]]
    program["light_weights"].value = [lights[0][1], lights[1][1]]
    program["ambient"].value = 1.0 if light == "unlit" else AMBIENT
    program["specular"].value = 0.0 if light == "unlit" else SPECULAR


def _draw(
    camera_vertices: np.ndarray,
    corners: np.ndarray | None,
    colors: np.ndarray,
    camera_points: np.ndarray | None,
    point_colors: np.ndarray | None,
    pixels_per_unit: float,
    size: tuple[int, int],
    point_diameter: float,
    cloud_diameter: float,
    background: tuple[float, ...],
    light: str,
) -> np.ndarray:
    """Rasterise camera-space geometry; returns (H, W, 3) uint8, row 0 at the top.

    camera_vertices: (V, 3) camera coords; corners: (3F, 9) per triangle corner: camera position,
    camera-space normal, colour (None: draw camera_vertices as a point cloud with ``colors``).
    """
    width, height = size
    scale = (2.0 * pixels_per_unit / width, 2.0 * pixels_per_unit / height)
    depths = [camera_vertices[:, 2]] + ([camera_points[:, 2]] if camera_points is not None else [])
    all_z = np.concatenate(depths) if sum(len(d) for d in depths) else np.zeros(1)
    z_mid = float(all_z.min() + all_z.max()) / 2.0
    z_half = float(all_z.max() - all_z.min()) / 2.0 * 1.05 + 1e-6 * (1.0 + abs(z_mid))
    # Dots stay visible up to one dot diameter behind the surface (in world units).
    dot_bias = point_diameter / pixels_per_unit / z_half
    layers = []  # (positions, colours, diameter, depth bias, sphere shading) per point layer
    if corners is None and len(camera_vertices):
        layers.append((camera_vertices, colors, cloud_diameter, 0.0, 1))
    if camera_points is not None and len(camera_points):
        layers.append((camera_points, point_colors, point_diameter, dot_bias, 0))
    _check_not_forked()  # before taking the lock, which a fork may have copied while held
    with _gl_lock:
        state = _gl()
        ctx = state.ctx
        with ctx:
            made: list[Any] = []  # every GL object of this frame, released even on errors
            try:
                color_rb = ctx.renderbuffer((width, height), components=4)
                made.append(color_rb)
                depth_rb = ctx.depth_renderbuffer((width, height))
                made.append(depth_rb)
                fbo = ctx.framebuffer(color_attachments=[color_rb], depth_attachment=depth_rb)
                made.append(fbo)
                fbo.use()
                ctx.viewport = (0, 0, width, height)
                fbo.clear(*background[:3], 1.0, depth=1.0)
                ctx.enable(ctx.DEPTH_TEST | ctx.PROGRAM_POINT_SIZE)
                ctx.disable(ctx.CULL_FACE | ctx.BLEND)
                ctx.depth_func = "<"
                for program in (state.mesh, state.point):
                    program["scale"].value = scale
                    program["depth"].value = (z_mid, z_half)
                    _set_light(program, light)
                if corners is not None:
                    _draw_triangles(state, corners, light, made)
                _draw_point_layers(state, layers, made)
                pixels = fbo.read(components=3, alignment=1)
            finally:
                for obj in reversed(made):
                    obj.release()
    # OpenGL's rows start at the bottom.
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3)[::-1].copy()


def _draw_triangles(state: _GLState, corners: np.ndarray, light: str, made: list[Any]) -> None:
    """Draw (3F, 9) triangle corners (camera position, normal, colour); GL objects go to ``made``."""
    ctx = state.ctx
    state.mesh["back_tint"].value = (1.0, 1.0, 1.0) if light == "unlit" else BACK_FACE_TINT
    vbo = ctx.buffer(np.ascontiguousarray(corners, dtype=np.float32))
    made.append(vbo)
    vao = ctx.vertex_array(state.mesh, [(vbo, "3f 3f 3f", "in_position", "in_normal", "in_color")])
    made.append(vao)
    vao.render(ctx.TRIANGLES)


def _draw_point_layers(state: _GLState, layers: list[tuple], made: list[Any]) -> None:
    """Draw each (positions (N, 3), colours (N, 3), diameter px, depth bias, sphere 0|1) layer as dots."""
    ctx = state.ctx
    for positions, layer_colors, diameter, bias, sphere in layers:
        state.point["diameter"].value = float(diameter)
        state.point["bias"].value = float(bias)
        state.point["sphere"].value = sphere
        vbo = ctx.buffer(np.hstack([positions, layer_colors]).astype(np.float32))
        made.append(vbo)
        vao = ctx.vertex_array(state.point, [(vbo, "3f 3f", "in_position", "in_color")])
        made.append(vao)
        vao.render(ctx.POINTS)
