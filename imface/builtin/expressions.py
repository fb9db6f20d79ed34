"""The 20 FaceScape expressions: their recipes and the deformations that realise them.

Recipes list what an expression does at full intensity: jaw articulation, muscle pulls
anchored at iBUG landmarks, wrinkle and fold strengths, eyelid closure, lip bending,
cheek inflation, and a pattern over the 10 linear expression components (in units of
their standard deviation). The generator scales each part by the scan's intensity
through identity-specific response curves. Pulls are (landmark id, offset mm, sigma mm,
vector mm) for the subject's left side (+x); ``mirror=True`` adds the right-side twin.

The deformations are pure vectorised functions. All positions are (V, 3) float arrays
in millimetres in the BFM frame (x to the subject's left, y up, z toward the viewer).
Angles are radians; weights are (V,) in [0, 1]. Nothing loops over vertices.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

#: FaceScape's expressions, in its order; file names use the 1-based number.
EXPRESSIONS: tuple[str, ...] = (
    "neutral", "smile", "mouth_stretch", "anger", "jaw_left", "jaw_right", "jaw_forward", "mouth_left",
    "mouth_right", "dimpler", "chin_raiser", "lip_puckerer", "lip_funneler", "sadness", "lip_roll", "grin",
    "cheek_blowing", "eye_closed", "brow_raiser", "brow_lower",
)

#: iBUG landmark ids of the left-side anchors and their right-side mirrors.
MIRROR_LANDMARK = {8: 8, 57: 57, 51: 51, 54: 48, 24: 19, 22: 21, 45: 36, 35: 31, 26: 17, 53: 49, 55: 59, 12: 4, 11: 5, 13: 3}


@dataclass(frozen=True)
class Pull:
    landmark: int
    offset_mm: tuple[float, float, float]
    sigma_mm: tuple[float, float, float]
    vector_mm: tuple[float, float, float]
    mirror: bool = True


@dataclass(frozen=True)
class Bulges:
    """Muscle bulges near a landmark: ``count`` bumps placed per identity within ``spread_mm``."""

    landmark: int
    offset_mm: tuple[float, float, float]
    spread_mm: float
    count: int
    height_mm: float
    mirror: bool = True


@dataclass(frozen=True)
class Recipe:
    jaw_open: float = 0.0  #: fraction of the identity's maximum opening
    jaw_yaw_deg: float = 0.0
    jaw_side_mm: float = 0.0  #: + = toward the subject's left
    jaw_forward_mm: float = 0.0
    pulls: tuple[Pull, ...] = ()
    bulges: tuple[Bulges, ...] = ()
    components: tuple[float, ...] = (0.0,) * 10  #: linear expression pattern, std units
    forehead: float = 0.0
    glabella: float = 0.0
    crows_feet: float = 0.0
    nasolabial: float = 0.0
    eyes_closed: float = 0.0
    pucker: float = 0.0  #: forward push + squeeze of the lips
    lip_bend: float = 0.0  #: + rolls in, - flares out
    cheek_blow: float = 0.0
    #: (furrow region, strength): regions in generator.FURROW_REGIONS; "under_eye" and "cheek" mean both sides
    furrows: tuple[tuple[str, float], ...] = field(default=())


def _c(**values: float) -> tuple[float, ...]:
    out = [0.0] * 10
    for key, value in values.items():
        out[int(key[1:])] = value
    return tuple(out)


_SMILE_PULLS = (
    Pull(54, (2.0, 2.0, -2.0), (13.0, 11.0, 13.0), (4.5, 5.0, -2.5)),
    Pull(54, (14.0, 18.0, -8.0), (16.0, 13.0, 16.0), (2.0, 4.0, 2.5)),  # cheek rises
)

RECIPES: dict[str, Recipe] = {
    "neutral": Recipe(),
    "smile": Recipe(furrows=(("under_eye", 0.7), ("cheek", 0.8)), pulls=_SMILE_PULLS, bulges=(Bulges(54, (20.0, 22.0, -6.0), 10.0, 2, 1.2),),
                    components=_c(c1=1.0, c3=0.5), nasolabial=0.8, crows_feet=0.6),
    "mouth_stretch": Recipe(furrows=(("neck", 1.0),), jaw_open=1.0, components=_c(c7=-0.8, c0=-0.6), forehead=0.35,
                            pulls=(Pull(54, (0.0, 0.0, 0.0), (10.0, 9.0, 10.0), (-2.0, -1.0, -1.0)),)),
    "anger": Recipe(furrows=(("nose", 0.8),), pulls=(Pull(22, (0.0, 0.0, 0.0), (14.0, 10.0, 14.0), (-2.0, -4.0, 1.0)),
                           Pull(54, (0.0, 0.0, 0.0), (11.0, 9.0, 11.0), (-1.0, -2.5, 0.0)),
                           Pull(35, (2.0, 0.0, 0.0), (6.0, 6.0, 6.0), (1.5, 0.5, 0.0))),
                    bulges=(Bulges(22, (-4.0, 6.0, 0.0), 6.0, 2, 1.0),),
                    components=_c(c0=1.0, c9=0.8), glabella=1.0, crows_feet=0.3, eyes_closed=0.15),
    "jaw_left": Recipe(furrows=(("neck", 0.4), ("chin", 0.4)), jaw_open=0.15, jaw_yaw_deg=4.0, jaw_side_mm=7.0, components=_c(c4=1.5, c2=1.0)),
    "jaw_right": Recipe(furrows=(("neck", 0.4), ("chin", 0.4)), jaw_open=0.15, jaw_yaw_deg=-4.0, jaw_side_mm=-7.0, components=_c(c4=-1.5, c2=-1.0)),
    "jaw_forward": Recipe(furrows=(("neck", 0.5), ("chin", 0.6)), jaw_open=0.1, jaw_forward_mm=6.5, components=_c(c9=-0.8)),
    "mouth_left": Recipe(furrows=(("cheek_l", 0.8),), pulls=(Pull(54, (0.0, 0.0, 0.0), (12.0, 10.0, 12.0), (5.0, 1.5, -2.0), mirror=False),
                                Pull(48, (0.0, 0.0, 0.0), (12.0, 10.0, 12.0), (5.0, 0.0, 1.0), mirror=False)),
                         components=_c(c2=1.5, c8=1.5), nasolabial=0.3),
    "mouth_right": Recipe(furrows=(("cheek_r", 0.8),), pulls=(Pull(48, (0.0, 0.0, 0.0), (12.0, 10.0, 12.0), (-5.0, 1.5, -2.0), mirror=False),
                                 Pull(54, (0.0, 0.0, 0.0), (12.0, 10.0, 12.0), (-5.0, 0.0, 1.0), mirror=False)),
                          components=_c(c2=-1.5, c8=-1.5), nasolabial=0.3),
    "dimpler": Recipe(furrows=(("cheek", 0.7), ("chin", 0.3)), pulls=(Pull(54, (0.0, 0.0, 0.0), (10.0, 9.0, 10.0), (3.0, 0.5, -4.0)),),
                      bulges=(Bulges(54, (10.0, -2.0, -3.0), 4.0, 1, -1.8),), components=_c(c1=0.6),
                      nasolabial=0.3),
    "chin_raiser": Recipe(furrows=(("chin", 1.0), ("upper_lip", 0.3)), pulls=(Pull(8, (0.0, 14.0, 0.0), (16.0, 11.0, 12.0), (0.0, 3.0, 2.5), mirror=False),
                                 Pull(57, (0.0, 0.0, 0.0), (12.0, 7.0, 10.0), (0.0, 1.2, 2.0), mirror=False)),
                          bulges=(Bulges(8, (6.0, 14.0, 2.0), 8.0, 4, 0.8),), components=_c(c0=0.6, c3=-0.6)),
    "lip_puckerer": Recipe(furrows=(("upper_lip", 1.0), ("chin", 0.6)), pucker=1.0, components=_c(c1=-1.5), crows_feet=0.0, nasolabial=0.2),
    "lip_funneler": Recipe(furrows=(("upper_lip", 0.8), ("chin", 0.5), ("neck", 0.3)), pucker=0.7, jaw_open=0.18, lip_bend=-0.6, components=_c(c1=-1.0, c7=-0.5)),
    "sadness": Recipe(furrows=(("chin", 0.8),), pulls=(Pull(22, (-2.0, 2.0, 0.0), (10.0, 12.0, 12.0), (0.5, 4.0, 0.0)),
                             Pull(54, (0.0, 0.0, 0.0), (11.0, 10.0, 11.0), (0.0, -4.0, -1.0))),
                      bulges=(Bulges(8, (0.0, 12.0, 2.0), 6.0, 2, 0.8, mirror=False),),
                      components=_c(c0=0.6, c5=1.0), forehead=0.45, glabella=0.3),
    "lip_roll": Recipe(furrows=(("upper_lip", 0.6), ("chin", 0.6)), lip_bend=1.0, pulls=(Pull(54, (0.0, 0.0, 0.0), (9.0, 8.0, 9.0), (0.5, 0.0, -2.0)),),
                       components=_c(c0=0.8)),
    "grin": Recipe(furrows=(("under_eye", 1.0), ("cheek", 1.0), ("neck", 0.6), ("nose", 0.3)), jaw_open=0.3, pulls=_SMILE_PULLS + (
                        Pull(51, (0.0, 3.0, 0.0), (12.0, 7.0, 10.0), (0.0, 3.0, 0.5), mirror=False),),
                   bulges=(Bulges(54, (20.0, 22.0, -6.0), 10.0, 2, 1.5),), components=_c(c1=1.5, c7=-0.5),
                   nasolabial=1.0, crows_feet=1.0, eyes_closed=0.2),
    "cheek_blowing": Recipe(furrows=(("chin", 0.3),), cheek_blow=1.0, pucker=0.25, components=_c(c0=0.5)),
    "eye_closed": Recipe(furrows=(("under_eye", 0.8), ("nose", 0.3)), eyes_closed=0.97, crows_feet=0.35, components=_c(c6=0.5)),
    "brow_raiser": Recipe(pulls=(Pull(24, (0.0, 4.0, 0.0), (22.0, 16.0, 18.0), (0.0, 7.0, 0.5)),),
                          components=_c(c6=-1.0), forehead=1.0),
    "brow_lower": Recipe(furrows=(("nose", 0.6), ("under_eye", 0.4)), pulls=(Pull(24, (-4.0, 0.0, 0.0), (16.0, 11.0, 14.0), (-2.0, -4.5, 0.5)),),
                         bulges=(Bulges(22, (-5.0, 8.0, 0.0), 6.0, 2, 1.0),),
                         components=_c(c6=1.0), glabella=0.8, eyes_closed=0.2, crows_feet=0.3),
}


# ---- deformations ----------------------------------------------------------------

def sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def gaussian_pulls(points: np.ndarray, centres: np.ndarray, sigmas_mm: np.ndarray,
                   vectors_mm: np.ndarray) -> np.ndarray:
    """Sum of Gaussian displacement fields (muscle pulls): (V, 3) mm.

    centres (K, 3) mm, sigmas_mm (K, 3) per-axis radii, vectors_mm (K, 3) the displacement
    at each centre. Keep |vector| / sigma below ~0.6 so the map stays a fold-free bijection.
    """
    if len(centres) == 0:
        return np.zeros_like(points)
    scaled = (points[:, None, :] - centres[None]) / sigmas_mm[None]  # (V, K, 3)
    weights = np.exp(-0.5 * np.einsum("vkc,vkc->vk", scaled, scaled))
    return weights @ vectors_mm


def normal_bumps(points: np.ndarray, centres: np.ndarray, radii_mm: np.ndarray,
                 heights_mm: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian bumps as scalar normal offsets: (V,) mm.

    centres (K, 3), radii_mm (K,), heights_mm (K,) (negative = dent).
    """
    if len(centres) == 0:
        return np.zeros(points.shape[0])
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / radii_mm[None] ** 2) @ heights_mm


def _rotate_in_plane(points: np.ndarray, pivot: np.ndarray, angles: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rotate coordinates (a, b) about ``pivot``: (a, b) -> (a cos - b sin, a sin + b cos)."""
    rel = points - pivot
    cos_a, sin_a = np.cos(angles), np.sin(angles)
    out = points.copy()
    out[:, a] = pivot[..., a] + rel[:, a] * cos_a - rel[:, b] * sin_a
    out[:, b] = pivot[..., b] + rel[:, a] * sin_a + rel[:, b] * cos_a
    return out


def rotate_about_x(points: np.ndarray, pivot: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate each point about the x-parallel axis through ``pivot`` by its own angle.

    points (V, 3), pivot (3,) or (V, 3), angles (V,) radians:
    (y, z) -> (y cos - z sin, y sin + z cos), so a positive angle turns a point in front of
    and below the pivot downward (how a jaw opens). Returns (V, 3).
    """
    return _rotate_in_plane(points, pivot, angles, 1, 2)


def rotate_about_y(points: np.ndarray, pivot: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Like :func:`rotate_about_x` about the vertical axis: (z, x) -> (z cos - x sin, z sin + x cos)."""
    return _rotate_in_plane(points, pivot, angles, 2, 0)


def mouth_line_at(x: np.ndarray, mouth_line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mouth line's (y, z) above/below each x: x (V,) mm, mouth_line (M, 3) sorted by x.

    Beyond the mouth corners the line's end values are held. Returns two (V,) arrays.
    """
    return (np.interp(x, mouth_line[:, 0], mouth_line[:, 1]), np.interp(x, mouth_line[:, 0], mouth_line[:, 2]))


def jaw_weights(rest: np.ndarray, hinge: np.ndarray, mouth_line: np.ndarray, wobble: np.ndarray,
                lip_falloff_mm: float, cheek_falloff_mm: float, chin_line: np.ndarray,
                under_falloff_mm: float, neck_z_mm: float, neck_falloff_mm: float) -> np.ndarray:
    """Skinning weight of the lower jaw: (V,) in [0, 1].

    The upper boundary is a surface through the hinge axis (x-parallel, at ``hinge`` y/z):
    a vertex belongs to the jaw when its angle about the axis is below the boundary
    angle. Between the mouth corners the boundary passes through ``mouth_line`` (M, 3),
    the midline between the lips sorted by x, with a lip-sharp falloff; beyond them it
    continues with an identity-specific ``wobble`` (Fourier coefficients (K, 2),
    radians, over x in units of twice the corner distance) and a broad cheek falloff. Below
    ``chin_line`` (2,) = (y, z) under the chin the weight fades over ``under_falloff_mm``
    so the throat stretches instead of turning, and vertices behind ``neck_z_mm``
    (relative to the hinge) fade out so the neck and ears stay put.
    """
    x = rest[:, 0]
    corner_x = 0.5 * (mouth_line[-1, 0] - mouth_line[0, 0])
    mouth_y, mouth_z = mouth_line_at(x, mouth_line)
    boundary = np.arctan2(mouth_y - hinge[1], mouth_z - hinge[2])
    lateral = np.clip((np.abs(x) - 0.6 * corner_x) / (1.2 * corner_x), 0.0, 1.0)
    lateral = lateral * lateral * (3.0 - 2.0 * lateral)
    orders = np.arange(1, len(wobble) + 1)
    phase = np.outer(x / (2.0 * corner_x), orders) * (np.pi / 2.0)
    boundary = boundary + lateral * (np.sin(phase) @ wobble[:, 0] + np.cos(phase) @ wobble[:, 1])
    rel_y, rel_z = rest[:, 1] - hinge[1], rest[:, 2] - hinge[2]
    angle = np.arctan2(rel_y, rel_z)
    radius = np.hypot(rel_y, rel_z)
    falloff = lip_falloff_mm + (cheek_falloff_mm - lip_falloff_mm) * lateral
    below = sigmoid((boundary - angle) * radius / falloff)
    lowest = np.arctan2(chin_line[0] - hinge[1], chin_line[1] - hinge[2])
    above_throat = sigmoid((angle - lowest) * radius / under_falloff_mm)
    front = sigmoid((rel_z - neck_z_mm) / neck_falloff_mm)
    return below * above_throat * front


def articulate_jaw(points: np.ndarray, weights: np.ndarray, hinge: np.ndarray, open_rad: float,
                   yaw_rad: float, side_mm: float, forward_mm: float) -> np.ndarray:
    """Open the jaw by ``open_rad`` about the hinge, turn it by ``yaw_rad``, shift it sideways
    and forward; each vertex moves by its skinning ``weights`` fraction of the angles and
    shifts (blended rotation angles, not blended positions, so nothing shrinks). (V, 3) mm."""
    opened = rotate_about_x(points, hinge, weights * open_rad)
    turned = rotate_about_y(opened, hinge, weights * yaw_rad)
    turned[:, 0] += weights * side_mm
    turned[:, 2] += weights * forward_mm
    return turned


def close_eyelid(points: np.ndarray, centre: np.ndarray, low_rad: float, lid_rad: float, top_rad: float,
                 closure: np.ndarray) -> np.ndarray:
    """Slide the upper eyelid down over the eyeball: (V, 3) mm.

    Angles are about the x-parallel axis through the eyeball ``centre`` (3,), measured as
    atan2(y, z) of the offset from it. The band between the lower lid (``low_rad``) and
    the upper lid margin (``lid_rad``) is compressed toward the lower lid by the per-vertex
    ``closure`` (V,) in [0, 1); above it, up to ``top_rad``, the skin stretches to follow.
    The map is monotonic in the angle, so lids never pass through each other.
    """
    rel = points - centre
    angle = np.arctan2(rel[:, 1], rel[:, 2])
    gap = lid_rad - low_rad
    shift = np.where(angle <= lid_rad, -(angle - low_rad), -gap * (top_rad - angle) / (top_rad - lid_rad))
    shift = np.where((angle < low_rad) | (angle > top_rad), 0.0, shift)
    # A positive rotate_about_x angle lowers atan2(y, z), hence the minus.
    return rotate_about_x(points, centre, -closure * shift)


def bend_lips(rest: np.ndarray, mouth_y: np.ndarray, mouth_z: np.ndarray, mask: np.ndarray,
              upper_height_mm: float, lower_height_mm: float, angle_rad: float,
              split_mm: float) -> np.ndarray:
    """Curl both lips about pivots at their bases: (V, 3) mm.

    ``mouth_y``/``mouth_z`` (V,) give the mouth line below/above each vertex; ``mask`` (V,)
    fades the effect across x. Positive ``angle_rad`` rolls the lips in (their free edges
    go back into the mouth), negative flares them out. The angle grows toward the free
    edge, which is what makes it a bend rather than a rigid turn.
    """
    rel_y = rest[:, 1] - mouth_y
    upper = sigmoid(rel_y / split_mm)
    height = np.where(rel_y >= 0, upper_height_mm, lower_height_mm)
    closeness = np.clip(1.0 - np.abs(rel_y) / height, 0.0, 1.0)
    curl = closeness * closeness * mask * angle_rad
    pivot = np.stack([rest[:, 0], mouth_y + np.where(rel_y >= 0, upper_height_mm, -lower_height_mm),
                      mouth_z - 4.0], axis=1)
    up = rotate_about_x(rest, pivot, curl)
    down = rotate_about_x(rest, pivot, -curl)
    return upper[:, None] * up + (1.0 - upper[:, None]) * down


def mouth_rims(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids of the upper and lower inner lip rims, each sorted by x: vertices (V, 3), faces (F, 3).

    The mouth is the mesh's small boundary loop (the other one is the outer rim);
    its two x-extreme vertices, the corners, split it into upper and lower halves.
    """
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    edges, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    boundary = edges[counts == 1]
    loops = trimesh.graph.connected_components(boundary)
    mouth = min(loops, key=len)
    mouth_edges = boundary[np.isin(boundary[:, 0], mouth)]
    # Walk the loop once (about 80 vertices, done once per generator).
    neighbours: dict[int, list[int]] = {}
    for a, b in mouth_edges:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    xs = vertices[:, 0]
    start = min(neighbours, key=lambda v: xs[v])
    end = max(neighbours, key=lambda v: xs[v])
    halves = []
    for first in neighbours[start]:
        path, prev, cur = [start], start, first
        while cur != end:
            path.append(cur)
            prev, cur = cur, next(n for n in neighbours[cur] if n != prev)
        path.append(end)
        halves.append(np.array(path))
    halves.sort(key=lambda ids: -vertices[ids, 1].mean())
    return tuple(h[np.argsort(xs[h], kind="stable")] for h in halves)
