"""Non-linear, identity-dependent face generator over a linear face source (BFM 2009 or ICT-FaceKit).

A registered mesh (the source's topology, e.g. BFM's 53,215 vertices; millimetres, shared
frame: x to the subject's left, y up, z toward the viewer) is made from:

* identity: the source's identity shape (:mod:`imface.builtin.source`); on the BFM the
  40 identity components drawn from their 3DDFA statistics, with
  their mean and std as given (the mean is the average fitted face, not zero; 200
  samples span 163-188 x 191-227 x 133-156 mm from the 1st to the 99th percentile,
  median 177 x 209 x 147 mm, and all look like faces), plus per-identity traits that
  the non-linear effects depend on (jaw hinge, skinning boundary, falloffs and how far
  the cheek follows the jaw, eyeball centres, individual furrows with their own place,
  width, depth and extent, fold courses, muscle sites, tissue compliance, response
  curves) and smooth skin detail of its own;
* expression: one of FaceScape's 20 (:data:`EXPRESSIONS`), realised through the source's
  linear expression part (BFM's 10 components, ICT's ARKit shapes) plus jaw articulation, eyelid closure about the eyeballs, lip
  bending, cheek inflation, muscle pulls and bulges, the cheek riding up against the
  nasolabial fold, and wrinkles and folds that slide and crowd with intensity; soft-tissue
  motion is scaled by a smooth compliance field and raises a muscle relief along the
  normals, both part the person's and part the expression's; each scan draws its own intensity, and each effect responds to it
  through the person's own exponent.

Everything is deterministic given (seed, identity, expression, scan). The person (rest shape
and traits) is made in :mod:`imface.builtin.identity`; the expressions are realised here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imface.builtin import expressions as ex
from imface.builtin import wrinkles as wr
from imface.builtin.expressions import EXPRESSIONS, MIRROR_LANDMARK, RECIPES
from imface.builtin.identity import Identity, keyed_rng, make_identity, unit_field
from imface.builtin.source import FaceSource

__all__ = ["EXPRESSIONS", "GeneratorSettings", "Identity", "FaceGenerator", "expression_index"]


@dataclass(frozen=True)
class GeneratorSettings:
    """What the generator adds on top of the linear face source.

    ``nonlinear=False`` gives the purely linear generator (expression components only),
    the baseline the non-linearity report compares against.
    """

    seed: int = 0
    nonlinear: bool = True
    wrinkles: bool = True
    skin_detail: bool = True
    min_intensity: float = 0.55
    max_intensity: float = 1.0
    #: std of the tissue compliance, which scales how far soft tissue follows the muscles (40-90 mm
    #: waves, long enough that the scaled motion never folds the skin): half of its
    #: variance is the person's own (fat pads, stiffness), half differs per expression (which fibres pull)
    tissue_variation: float = 0.25
    #: muscle relief: normal offset = this x min(|soft-tissue motion|, 5 mm) x a 15-45 mm random field, half
    #: the person's own and half the expression's (where and how muscles bunch up under the skin)
    muscle_relief: float = 0.36


def expression_index(name: str) -> int:
    """FaceScape's 1-based number of an expression name."""
    return EXPRESSIONS.index(name) + 1


def _sorted_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0], kind="stable")
    return points[order, 0], points[order, 1]


class FaceGenerator:
    """Registered face meshes from a face source; see the module docstring.

    ``registered(identity, expression, scan)`` -> (V, 3) float32 mm. Identities are
    cached (a few MB each), so generating many expressions of one identity is cheap.
    """

    def __init__(self, source: FaceSource, settings: GeneratorSettings | None = None, cache_size: int = 8):
        self.source = source
        self.settings = settings or GeneratorSettings()
        self.identity = lru_cache(maxsize=cache_size)(self._make_identity)
        self._lmk = source.landmark_ids
        self._upper_lip, self._lower_lip = ex.mouth_rims(source.mean_mm, source.faces)

    @property
    def faces(self) -> np.ndarray:
        return self.source.faces

    def _make_identity(self, index: int) -> Identity:
        return make_identity(self.source, index, seed=self.settings.seed, skin_detail=self.settings.skin_detail,
                             lips=(self._upper_lip, self._lower_lip))

    # ---- expressions ----------------------------------------------------------------
    def intensity(self, identity: int, expression: str, scan: int = 0) -> float:
        """The scan's expression intensity in [min_intensity, max_intensity] (0 for neutral)."""
        if expression == "neutral":
            return 0.0
        lo, hi = self.settings.min_intensity, self.settings.max_intensity
        return float(keyed_rng(self.settings.seed, identity, expression_index(expression), scan, 2).uniform(lo, hi))

    def registered(self, identity: int, expression: str, scan: int = 0) -> np.ndarray:
        """Registered mesh vertices (V, 3) float32 mm, shared frame, no pose and no noise."""
        if expression not in RECIPES:
            raise ValueError(f"unknown expression {expression!r}; expected one of {', '.join(EXPRESSIONS)}")
        person = self.identity(identity)
        recipe = RECIPES[expression]
        level = self.intensity(identity, expression, scan)
        style = keyed_rng(self.settings.seed, identity, expression_index(expression), 1)
        resp = person.response if self.settings.nonlinear else np.ones(8)

        def amount(strength: float, family: int) -> float:
            return float(strength * level ** resp[family]) if level > 0 else 0.0

        soft, bone = self.source.expression_motion(expression, level, style)  # (V, 3) each, bone may be None
        if not self.settings.nonlinear:
            return (person.rest + soft + (0.0 if bone is None else bone)).astype(np.float32)

        rest, lmk = person.rest, person.landmarks
        # Soft-tissue motion (linear components, muscle pulls, inflation) scales with the compliance;
        # muscles (not air) raise the relief.
        soft = soft + self._pulls(rest, lmk, recipe, style, person, amount(1.0, 0))
        if recipe.nasolabial:
            soft = soft + self._cheek_slip(rest, lmk, person, level, amount(recipe.nasolabial, 3))
        muscle_motion = np.linalg.norm(soft, axis=1)
        if recipe.cheek_blow:
            soft = soft + person.normals * self._cheek_blow(rest, lmk, person, amount(recipe.cheek_blow, 6) * self.source.cheek_inflation)[:, None]
        normal_offset = person.skin_detail + self._bulges(rest, lmk, recipe, style, person, amount(1.0, 1))
        if self.settings.wrinkles:
            normal_offset = normal_offset + self._wrinkles(rest, lmk, recipe, person, level, amount)
        own = keyed_rng(self.settings.seed, identity, expression_index(expression), 6)
        mix = lambda a, b: np.clip((a + b) / np.sqrt(2.0), -2.0, 2.0)  # noqa: E731
        compliance = 1.0 + self.settings.tissue_variation * mix(person.compliance, unit_field(person.long_waves, own))
        relief = self.settings.muscle_relief * mix(person.relief, unit_field(person.waves, own))
        # Muscles bunch up where tissue moves; capped so that large motions do not turn lumpy.
        normal_offset = normal_offset + relief * np.minimum(muscle_motion, 5.0)
        points = rest + compliance[:, None] * soft + person.normals * normal_offset[:, None]
        if bone is not None:
            points = points + bone
        if recipe.pucker or recipe.lip_bend:
            points = self._lips(points, rest, person, amount(recipe.pucker, 7), amount(recipe.lip_bend, 7))
        points = self._lip_contact(points, person)
        if recipe.eyes_closed:
            closure = person.eye_closure_mask * min(amount(recipe.eyes_closed, 5), 0.97)
            for centre, (low, lid, top) in zip(person.eye_centres, person.eye_angles):  # two eyes
                side = (rest[:, 0] * np.sign(centre[0]) > 0).astype(np.float64)
                points = ex.close_eyelid(points, centre, low, lid, top, closure * side)
        if recipe.jaw_open or recipe.jaw_side_mm or recipe.jaw_forward_mm:
            jaw = amount(1.0, 4) * self.source.jaw_articulation
            points = ex.articulate_jaw(points, person.jaw_weights, person.hinge,
                                       recipe.jaw_open * jaw * person.jaw_max_rad, np.deg2rad(recipe.jaw_yaw_deg) * jaw,
                                       recipe.jaw_side_mm * jaw * person.traits["pull_gain"],
                                       recipe.jaw_forward_mm * jaw * person.traits["pull_gain"])
        return points.astype(np.float32)

    def neutral(self, identity: int) -> np.ndarray:
        return self.registered(identity, "neutral")

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """The 68 iBUG landmarks (68, 3) of a registered mesh."""
        return vertices[self._lmk]

    # ---- parts ----------------------------------------------------------------------
    @staticmethod
    def _anchors(lmk: np.ndarray, landmark: int, offset: tuple, mirror: bool) -> list[tuple[np.ndarray, float]]:
        left = [(lmk[landmark] + np.asarray(offset), 1.0)]
        if not mirror:
            return left
        flipped = np.asarray(offset) * np.array([-1.0, 1.0, 1.0])
        return left + [(lmk[MIRROR_LANDMARK[landmark]] + flipped, -1.0)]

    def _pulls(self, rest, lmk, recipe, style, person, level: float) -> np.ndarray:
        centres, sigmas, vectors = [], [], []
        gain = person.traits["pull_gain"]
        for pull in recipe.pulls:  # a handful of muscles per expression
            for anchor, sign in self._anchors(lmk, pull.landmark, pull.offset_mm, pull.mirror):
                flip = np.array([sign, 1.0, 1.0])
                centres.append(anchor + style.normal(0.0, 3.0, 3))
                sigma = np.asarray(pull.sigma_mm) * style.uniform(0.8, 1.25) * person.traits["muscle_scale"]
                vector = np.asarray(pull.vector_mm) * flip * style.uniform(0.7, 1.3, 3) * gain * level
                # A pull stronger than ~0.6 sigma would fold the skin over; compliance can raise it by half.
                vector *= min(1.0, 0.3 * sigma.min() / max(np.linalg.norm(vector), 1e-9))
                sigmas.append(sigma)
                vectors.append(vector)
        if not centres:
            return 0.0
        return ex.gaussian_pulls(rest, np.array(centres), np.array(sigmas), np.array(vectors))

    def _bulges(self, rest, lmk, recipe, style, person, level: float) -> np.ndarray:
        centres, radii, heights = [], [], []
        for group in recipe.bulges:
            for anchor, _ in self._anchors(lmk, group.landmark, group.offset_mm, group.mirror):
                centres.append(anchor + style.normal(0.0, group.spread_mm, (group.count, 3)))
                radii.append(style.uniform(4.0, 8.0, group.count))
                heights.append(group.height_mm * style.uniform(0.6, 1.4, group.count) * level)
        if not centres:
            return 0.0
        return ex.normal_bumps(rest, np.concatenate(centres), np.concatenate(radii), np.concatenate(heights))

    def _wrinkles(self, rest, lmk, recipe, person, level: float, amount) -> np.ndarray:
        t = person.traits
        out = np.zeros(len(rest))
        strengths = list(recipe.furrows) + [("forehead", recipe.forehead), ("glabella", recipe.glabella)]
        for name, strength in strengths:  # a few regions per expression
            for region in wr.BOTH_SIDES.get(name, (name,)):
                if strength:
                    out += self._furrows(rest, lmk, region, t["furrows"][region], level, amount(strength, 2))
        if recipe.crows_feet:
            for c, corner_id, outward in zip(t["crows"], (45, 36), (1.0, -1.0)):
                corner = lmk[corner_id] + np.array([outward * 4.0, 0.0, 0.0])
                out += wr.crows_feet(rest, corner, outward, c["count"], c["fan"] * (0.7 + 0.4 * level),
                                     c["rot"] + c["spin"] * level, c["inner"], c["outer"], c["width"],
                                     amount(c["depth"] * recipe.crows_feet, 3))
        if recipe.nasolabial:
            for n, (start, end, outward) in zip(t["nasolabial"], self._fold_ends(lmk, t)):
                out += wr.nasolabial_fold(rest, start, end, outward, n["bow"] * (0.6 + 0.8 * level),
                                          n["slide"] * level, n["width"], amount(n["depth"] * recipe.nasolabial, 3),
                                          n["bulge"])
        return out

    @staticmethod
    def _fold_ends(lmk: np.ndarray, traits: dict) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """(start, end, outward) of the left and right nasolabial folds on the rest shape."""
        ends = []
        for n, wing, corner, outward in zip(traits["nasolabial"], (35, 31), (54, 48), (1.0, -1.0)):
            start = lmk[wing] + np.array([outward * 6.0, 3.0, 0.0]) + n["start"]
            end = lmk[corner] + np.array([outward * 8.0, -10.0, 0.0]) + n["end"]
            ends.append((start, end, outward))
        return ends

    def _lip_contact(self, points: np.ndarray, person: Identity, margin_mm: float = 0.3) -> np.ndarray:
        """Lips press on each other instead of passing through: (V, 3) mm.

        Where the lower lip's rim has risen above the upper lip's rim (at the same x), both
        lips give way by half the overlap, fading over a few mm away from the mouth line.
        Runs before the jaw opens, so an open mouth is never touched.
        """
        upper, lower = points[self._upper_lip], points[self._lower_lip]
        lo = max(upper[:, 0].min(), lower[:, 0].min())
        hi = min(upper[:, 0].max(), lower[:, 0].max())
        xs = np.linspace(lo, hi, 64)
        up_y = np.interp(xs, *_sorted_xy(upper))
        low_y = np.interp(xs, *_sorted_xy(lower))
        overlap = np.maximum(low_y - up_y + margin_mm, 0.0)
        if not overlap.any():
            return points
        rest = person.rest
        mouth_y, _ = ex.mouth_line_at(rest[:, 0], person.mouth_line)
        above = rest[:, 1] - mouth_y
        push = 0.5 * np.interp(points[:, 0], xs, overlap, left=0.0, right=0.0) * np.exp(-np.abs(above) / 6.0)
        out = points.copy()
        out[:, 1] += np.where(above >= 0.0, push, -push)
        return out

    def _cheek_slip(self, rest, lmk, person, level: float, lift: float) -> np.ndarray:
        """The cheek rides up against the nasolabial fold, which it does not cross: (V, 3) mm.

        The lift falls off with distance from the fold on the cheek side and stops within a
        couple of millimetres at the fold, so the fold's identity-specific course shows up
        as a sharp edge in the motion.
        """
        t = person.traits
        out = np.zeros_like(rest)
        for n, (start, end, outward) in zip(t["nasolabial"], self._fold_ends(lmk, t)):
            dist, along = wr.fold_coordinates(rest, start, end, outward, n["bow"] * (0.6 + 0.8 * level),
                                              n["slide"] * level)
            side = ex.sigmoid(dist / n["slip_edge"]) * np.exp(-np.maximum(dist, 0.0) / n["slip_reach"])
            side = side * wr.window(along, 0.0, 1.0, 0.35)
            out += side[:, None] * (np.array([outward, 1.0, 1.0]) * n["slip_vector"] * lift)
        return out

    @staticmethod
    def _furrows(rest, lmk, region: str, f: dict, level: float, depth_scale: float) -> np.ndarray:
        anchors, offset = wr.FURROW_REGIONS[region][:2]
        centre = lmk[list(anchors)].mean(0) + np.asarray(offset) + f["shift"]
        # Furrows crowd together and slide as the expression strengthens.
        return wr.furrow_set(rest, centre, f["angle"], f["curvature"], f["offsets"] * (1.0 - f["crowd"] * level),
                             f["widths"], f["depths"] * depth_scale, f["starts"], f["ends"], f["slide"] * level)

    def _cheek_blow(self, rest, lmk, person, level: float) -> np.ndarray:
        c = person.traits["cheeks"]
        centres = np.array([lmk[54] + c["offset"], lmk[48] + c["offset"] * np.array([-1.0, 1.0, 1.0])])
        d2 = ((rest[:, None, :] - centres[None]) ** 2).sum(-1) / c["radius"] ** 2
        return c["height"] * level * np.exp(-0.5 * d2**1.3).sum(1)

    def _lips(self, points, rest, person, pucker: float, bend: float) -> np.ndarray:
        lips = person.traits["lips"]
        mouth_y, mouth_z = ex.mouth_line_at(rest[:, 0], person.mouth_line)
        if bend:
            bent = ex.bend_lips(rest, mouth_y, mouth_z, person.lip_mask, lips["upper"], lips["lower"],
                                bend * lips["roll"], 0.5)
            points = points + (bent - rest)
        if pucker:
            around = np.exp(-0.5 * ((rest[:, 0] / (1.1 * person.corner_x_mm)) ** 2
                                    + ((rest[:, 1] - mouth_y) / 13.0) ** 2) ** 1.5)
            points = points.copy()
            points[:, 2] += pucker * lips["pucker"] * around
            points[:, 0] -= pucker * lips["squeeze"] * rest[:, 0] * around
        return points
