"""One synthetic person of the built-in face generator: a rest shape drawn from the face source's
identity model and the traits the expressions depend on (jaw hinge and skinning, eyeballs, lips,
folds, furrows, muscles, tissue compliance, response curves) and smooth skin detail of its own.

All positions are millimetres in the shared frame (x to the subject's left, y up, z toward the
viewer). Everything is deterministic given (seed, identity index): each part draws from its own
generator, :func:`keyed_rng` of the seed, the index and a part number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imface.builtin import expressions as ex
from imface.builtin import wrinkles as wr
from imface.builtin.source import FaceSource
from imface.ops.normals import vertex_normals


@dataclass(frozen=True)
class Identity:
    """One synthetic person: rest shape and the traits the expressions depend on (mm)."""

    index: int
    id_coefficients: np.ndarray  # (K,) the source's identity coefficients
    rest: np.ndarray  # (V, 3) neutral shape without skin detail
    normals: np.ndarray  # (V, 3) unit normals of ``rest``
    landmarks: np.ndarray  # (68, 3) on ``rest``
    skin_detail: np.ndarray  # (V,) offset along ``normals``
    waves: np.ndarray  # (V, 96) float32 bank of plane waves (15-45 mm) the relief fields mix
    long_waves: np.ndarray  # (V, 32) float32 bank of plane waves (40-90 mm) the compliance fields mix
    compliance: np.ndarray  # (V,) unit-variance smooth field: this person's tissue, shared by expressions
    relief: np.ndarray  # (V,) unit-variance field: where this person's muscles bunch up
    jaw_weights: np.ndarray  # (V,)
    hinge: np.ndarray  # (3,)
    jaw_max_rad: float
    mouth_line: np.ndarray  # (M, 3) midline between the lips, sorted by x
    corner_x_mm: float
    lip_mask: np.ndarray  # (V,)
    eye_closure_mask: np.ndarray  # (V,) 0..1 over both eye regions
    eye_centres: np.ndarray  # (2, 3)
    eye_angles: np.ndarray  # (2, 3) low, lid, top (radians about each centre)
    response: np.ndarray  # (8,) intensity exponents per effect family
    traits: dict  # wrinkle / fold / muscle parameters


def keyed_rng(*key: int) -> np.random.Generator:
    """The generator of one part of one scan or person: a seed sequence of integer keys."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def plane_waves(points: np.ndarray, rng: np.random.Generator, wavelengths_mm: tuple[float, float],
                modes: int = 96) -> np.ndarray:
    """A bank of random plane waves over the vertices: (V, modes) float32, values in [-1, 1]."""
    directions = rng.normal(size=(modes, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(*wavelengths_mm, modes)
    phases = points @ (directions.T * (2 * np.pi / wavelengths)) + rng.uniform(0, 2 * np.pi, modes)
    return np.cos(phases).astype(np.float32)


def unit_field(waves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of zero mean and unit std: a random mix of the wave bank. (V,)"""
    field = (waves @ rng.normal(0.0, 1.0, waves.shape[1]).astype(np.float32)).astype(np.float64)
    return (field - field.mean()) / max(field.std(), 1e-9)


def smooth_detail(points: np.ndarray, rng: np.random.Generator, modes: int = 48) -> np.ndarray:
    """Identity skin detail: a sum of random plane waves, wavelengths 4-20 mm, RMS ~0.1 mm. (V,) mm."""
    directions = rng.normal(size=(modes, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(4.0, 20.0, modes)
    waves = np.cos(points @ (directions.T * (2 * np.pi / wavelengths)) + rng.uniform(0, 2 * np.pi, modes))
    return waves @ (rng.normal(0.0, 0.14, modes) * np.sqrt(wavelengths / 12.0)) / np.sqrt(modes / 2)


def make_identity(source: FaceSource, index: int, *, seed: int, skin_detail: bool,
                  lips: tuple[np.ndarray, np.ndarray]) -> Identity:
    """Person ``index`` of the generator with ``seed`` on ``source``;
    lips: the vertex ids of the upper and lower lip's inner rims (see ``ex.mouth_rims``);
    skin_detail: False leaves the skin smooth (zero detail)."""
    s = source
    rng = keyed_rng(seed, index, 0)
    alpha, rest = source.identity_shape(rng)
    normals = vertex_normals(rest, s.faces, weighting="area")
    lmk = rest[s.landmark_ids]
    detail = smooth_detail(rest, keyed_rng(seed, index, 1)) if skin_detail else np.zeros(len(rest))
    # Fat pads, stiffness and muscle bulk differ from person to person: smooth random fields.
    waves = plane_waves(rest, keyed_rng(seed, index, 4), (15.0, 45.0))
    long_waves = plane_waves(rest, keyed_rng(seed, index, 8), (40.0, 90.0), 32)
    compliance = unit_field(long_waves, keyed_rng(seed, index, 7))
    relief = unit_field(waves, keyed_rng(seed, index, 9))

    mouth_line = mouth_line_of(rest, *lips)
    cx = 0.5 * (mouth_line[-1, 0] - mouth_line[0, 0])
    # TMJ: in front of the ear at about the level of iBUG 1 / 15, jittered per person.
    side = 0.5 * (lmk[1] + lmk[15])
    hinge = np.array([0.0, side[1] + rng.uniform(-6, 6), side[2] + rng.uniform(-4, 10)])
    wobble = rng.normal(0.0, [0.07, 0.05, 0.035, 0.025, 0.015, 0.01], size=(2, 6)).T
    chin_line = lmk[8, 1:] + np.array([-rng.uniform(8.0, 16.0), -rng.uniform(5.0, 15.0)])
    jaw_w = ex.jaw_weights(rest, hinge, mouth_line, wobble, rng.uniform(0.15, 0.25), rng.uniform(6.0, 12.0),
                           chin_line, rng.uniform(12.0, 22.0), rng.uniform(-12.0, 0.0), rng.uniform(4.0, 9.0))
    # How far the cheek follows the jaw varies along the transition zone (and only there).
    jaw_xi = np.clip(unit_field(waves, keyed_rng(seed, index, 5)), -2.0, 2.0)
    jaw_w = np.clip(jaw_w + 0.1 * jaw_xi * 4.0 * jaw_w * (1.0 - jaw_w), 0.0, 1.0)
    # Lips bend between the corners; at the corners, where they join, they hold still.
    lip_mask = wr.window(rest[:, 0], -cx * rng.uniform(0.4, 0.6), cx * rng.uniform(0.4, 0.6), 0.4 * cx)

    eye_centres, eye_angles, closure = _eyes(rest, lmk, rng)
    traits = _traits(rng)
    return Identity(index=index, id_coefficients=alpha, rest=rest, normals=normals, landmarks=lmk,
                    skin_detail=detail, waves=waves, long_waves=long_waves,
                    compliance=compliance, relief=relief, jaw_weights=jaw_w, hinge=hinge,
                    jaw_max_rad=np.deg2rad(rng.uniform(16.0, 23.0)), mouth_line=mouth_line,
                    corner_x_mm=cx, lip_mask=lip_mask, eye_closure_mask=np.clip(closure, 0.0, 1.0),
                    eye_centres=np.array(eye_centres), eye_angles=np.array(eye_angles),
                    response=rng.uniform(0.7, 1.8, 8), traits=traits)


def _eyes(rest: np.ndarray, lmk: np.ndarray, rng: np.random.Generator) -> tuple[list, list, np.ndarray]:
    """Both eyeballs' centres (3,) mm and (low, lid, top) angles about them, and the (V,) closure mask."""
    eye_centres, eye_angles, closure = [], [], np.zeros(len(rest))
    for ids in (range(36, 42), range(42, 48)):  # two eyes: a fixed loop of two
        ring = lmk[list(ids)]
        centre = ring.mean(0) + np.array([0.0, rng.uniform(-1.5, 1.5), -rng.uniform(10.5, 13.5)])
        rel = ring - centre
        ring_angle = np.arctan2(rel[:, 1], rel[:, 2])
        low = ring_angle[[4, 5]].mean() + rng.uniform(-0.02, 0.02)
        lid = ring_angle[[1, 2]].mean()
        top = lid + rng.uniform(0.55, 0.8)
        width = 0.5 * np.ptp(ring[:, 0]) * rng.uniform(1.25, 1.5)
        ex_x = (rest[:, 0] - ring[:, 0].mean()) / width
        closure += wr.window(ex_x, -0.75, 0.75, 0.35) * wr.window(rest[:, 2] - centre[2], 0.0, 60.0, 4.0)
        eye_centres.append(centre)
        eye_angles.append([low, lid, top])
    return eye_centres, eye_angles, closure


def _traits(rng: np.random.Generator) -> dict:
    """Wrinkle, fold, cheek, lip, furrow and muscle parameters of one person."""
    return {
        "crows": [dict(count=int(rng.integers(3, 6)), fan=rng.uniform(0.7, 1.3), rot=rng.uniform(-0.35, 0.2),
                       inner=rng.uniform(4, 8), outer=rng.uniform(14, 22), width=rng.uniform(3.0, 4.0),
                       depth=rng.uniform(1.0, 2.0), spin=rng.uniform(-0.25, 0.25)) for _ in range(2)],
        "nasolabial": [dict(start=rng.normal(0, 2.0, 3), end=rng.normal(0, 2.5, 3), bow=rng.uniform(0.0, 6.0),
                            width=rng.uniform(3.5, 6.0), depth=rng.uniform(1.0, 3.0),
                            bulge=rng.uniform(0.3, 0.8), slide=rng.uniform(1.0, 5.0),
                            slip_edge=rng.uniform(1.2, 2.0), slip_reach=rng.uniform(15.0, 30.0),
                            slip_vector=rng.uniform([0.5, 2.5, 1.0], [2.0, 4.5, 2.5])) for _ in range(2)],
        "cheeks": dict(offset=rng.normal([24.0, 4.0, -14.0], 3.0), radius=rng.uniform(20.0, 27.0),
                       height=rng.uniform(9.0, 14.0)),
        "lips": dict(upper=rng.uniform(7.0, 11.0), lower=rng.uniform(8.0, 12.0), roll=rng.uniform(0.8, 1.3),
                     pucker=rng.uniform(6.0, 10.0), squeeze=rng.uniform(0.25, 0.45)),
        "furrows": {name: wr.furrow_traits(rng, region) for name, region in wr.FURROW_REGIONS.items()},
        "muscle_scale": rng.uniform(0.8, 1.25, 3),
        "pull_gain": rng.uniform(0.75, 1.25),
    }


def mouth_line_of(rest: np.ndarray, upper_lip: np.ndarray, lower_lip: np.ndarray, samples: int = 41) -> np.ndarray:
    """Midline between the lips' inner rims (vertex ids) of ``rest`` (V, 3): (samples, 3) mm, sorted
    by x, corner to corner."""
    upper, lower = rest[upper_lip], rest[lower_lip]
    lo = max(upper[:, 0].min(), lower[:, 0].min())
    hi = min(upper[:, 0].max(), lower[:, 0].max())
    xs = np.linspace(lo, hi, samples)
    mid = [0.5 * (np.interp(xs, upper[:, 0], upper[:, k]) + np.interp(xs, lower[:, 0], lower[:, k])) for k in (1, 2)]
    return np.stack([xs, mid[0], mid[1]], axis=1)
