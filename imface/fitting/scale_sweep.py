"""The scale of a landmark-free input, chosen by short fits at several scales (``--unit auto``).

The similarity search (:mod:`imface.ops.similarity_search`) matches the input to the model's
*mean* face, so its scale carries the person's size against the mean face as well as the
unit: on the built-in people it is 2-6% off for a whole person. A bigger head is not a
scaled-up mean face, though, and the model can fit a face best at its true size (a validation
mesh 2.7% too small: 0.75 mm Chamfer; at its true size 0.55 mm). So each searched input is
fitted at ``FitSettings.scale_sweep`` scales around the search's, in one batch with the scale
fixed per copy and the pose re-fitted to the mean face at each scale (scaling alone leaves the
face where the mean face would not hold it). Each short fit is scored both ways, in the
input's own units so that scales compare fairly: the trimmed mean distance of the input's face
points (those near the mean face as the search posed it) to its surface, and of its surface
(the mean face's points the input covers, projected onto the fit) back to the input's surface
(point to plane, so that the gaps of a sparse cloud do not count), so that a fit reaching past a
shrunken input's border costs. A parabola through the best score and its two neighbours gives
the scale the real fit runs at.

Off by default since 2026-12-05 (``DEFAULT_SCALE_SWEEP``; ``imface fit --scale-sweep 7`` turns it
on; docs/lab/2026-12-05-scale-sweep.md has the runs). The one-way score sent expressive inputs 4-8.5% small into far
worse fits; the two-way score with point-to-point distances back to the input sent one person's
one-view clouds 5-8% large; point to plane, on two validation people, 11 of 20 inputs came within
2% (the search: 0). On six validation people and three models it did not carry over: scale within
2% on 26 of 72 inputs with it and without, Chamfer worse with it (meshes 0.709 against 0.689 mm,
one-view clouds 0.728 against 0.706), 12-16 s more per fit. The scale errors are the people's
sizes (016 6.6% smaller than the mean, fitted 4-6% large either way), which short fits of this
model cannot tell from a unit.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.spatial import cKDTree

from imface.config import DEFAULT_FIT_ROBUST_MM
from imface.fitting.align import rescale_target
from imface.fitting.inputs import FitTarget
from imface.frame import MM_PER_UNIT
from imface.ops.neighbourhoods import distance_to_sampled_surface
from imface.ops.similarity_search import refine_pose

#: Points of each input scored after the fits (a fixed subset, the same for every scale).
SCORE_POINTS = 8192
#: Only input points this close to the mean face as the search posed them are scored (model
#: units): the face, not the hair, neck or shoulders (on validation inputs this changed little
#: against scoring every point).
FACE_DISTANCE = 0.1
#: Mean-face points projected onto each fit to measure it back to the input.
TEMPLATE_POINTS = 2048


def sweep_factors(count: int, half_range: float) -> np.ndarray:
    """(count,) scale factors spaced evenly in log scale over [1 / (1 + r), 1 + r] (1 in the middle)."""
    return np.exp(np.linspace(-np.log1p(half_range), np.log1p(half_range), count))


def parabola_minimum(log_factors: np.ndarray, scores: np.ndarray) -> float:
    """The log-factor at the minimum of the parabola through the lowest score and its two
    neighbours (evenly spaced ``log_factors``), within one spacing of that sample; the lowest
    sample itself at either end."""
    best = int(np.argmin(scores))
    if best == 0 or best == len(scores) - 1:
        return float(log_factors[best])
    left, mid, right = scores[best - 1], scores[best], scores[best + 1]
    curvature = left - 2 * mid + right
    offset = 0.0 if curvature <= 0 else 0.5 * (left - right) / curvature
    return float(log_factors[best] + (log_factors[1] - log_factors[0]) * np.clip(offset, -1.0, 1.0))


def _posed(points: np.ndarray, target: FitTarget) -> np.ndarray:
    """Points (N, 3) of the target's input frame in model space under its present pose."""
    return np.asarray(points, dtype=np.float64) @ np.asarray(target.init_rotation).T + np.asarray(target.init_translation)


def _pivot(target: FitTarget) -> np.ndarray:
    """The input's centroid as the search posed it, model units (3,): the fixed point of scaling."""
    return _posed(np.asarray(target.surface_points, dtype=np.float64).mean(axis=0, keepdims=True), target)[0]


def scaled_pose(target: FitTarget, factor: float, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The target's pose for its input grown by ``factor``: scaled about its posed centroid,
    then rigidly re-fitted to the mean face's front points ``template`` (M, 3) at that scale
    (scaling alone leaves the face off where the mean face would hold it: on a validation mesh,
    60-step fits then scored best at the search's scale, re-fitted at the true one)."""

    pivot = _pivot(target)
    translation = factor * np.asarray(target.init_translation) + (1 - factor) * pivot
    return refine_pose(np.asarray(target.surface_points, dtype=np.float64) * factor, template,
                       np.asarray(target.init_rotation), translation)


def face_points(target: FitTarget, template: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``SCORE_POINTS`` of the target's points (N, 3) within ``FACE_DISTANCE`` of the mean
    face's front points ``template`` (M, 3) under the search's pose (all points if fewer than 100 are)."""

    points = np.asarray(target.surface_points)
    near = cKDTree(template).query(_posed(points, target), distance_upper_bound=FACE_DISTANCE)[0] <= FACE_DISTANCE
    if near.sum() >= 100:
        points = points[near]
    return points[rng.permutation(len(points))[:SCORE_POINTS]]


def covered_template(target: FitTarget, template: np.ndarray) -> np.ndarray:
    """The mean face's front points (M, 3) that the input covers as the search posed it (within
    ``FACE_DISTANCE`` of an input point): where a fit can be measured back to the input without
    rewarding an input grown over parts it never saw (a one-view cloud). All if under 100 are."""

    near = cKDTree(_posed(target.surface_points, target)).query(template, distance_upper_bound=FACE_DISTANCE)[0] <= FACE_DISTANCE
    return template[near] if near.sum() >= 100 else template


def score_copies(model: torch.nn.Module, points: np.ndarray, state, rows: slice, factors: np.ndarray, trim: float,
                 device: torch.device, template: np.ndarray | None = None) -> np.ndarray:
    """Trimmed mean |f| of points (N, 3) (the input at the search's scale) under each copy's fit
    (rows of ``state``; copy k saw them grown by ``factors[k]``), in the points' own units, so
    the scales compare fairly; distances cap at ``trim``. With ``template`` (M, 3), the mean
    face's front points, the fit is also measured back to the input: those points projected
    onto each fitted surface (two Newton steps), their trimmed mean distance to the surface the
    input's points sample (:func:`imface.ops.neighbourhoods.distance_to_sampled_surface`: to the
    plane of the nearest input point, plus how far along it they lie beyond its sampling spacing),
    so that the gaps between a sparse cloud's points do not count and a fit reaching past the
    input's border does. The score is the mean of both directions. Returns (len(factors),)."""
    x = torch.from_numpy(np.asarray(points, dtype=np.float32)).to(device)
    grow = torch.tensor(factors, dtype=torch.float32, device=device)
    rotation, translation = state.rotation[rows], state.translation[rows]
    codes = (state.id_codes[rows], state.exp_codes[rows], state.neutral[rows])
    posed = grow[:, None, None] * (x[None] @ rotation.transpose(1, 2)) + translation[:, None, :]
    with torch.no_grad():
        f = model.sdf(posed, *codes)
    to_fit = (f.abs() / grow[:, None]).clamp_max(trim).mean(dim=1)
    if template is None:
        return to_fit.cpu().numpy().astype(np.float64)
    template = np.asarray(template, dtype=np.float32)
    template = template[np.random.default_rng(0).permutation(len(template))[:TEMPLATE_POINTS]]
    surface = torch.from_numpy(template).to(device)[None].expand(len(factors), -1, -1)
    for _ in range(2):  # onto each fit's zero set
        out = model.evaluate(surface, *codes, with_gradients=True)
        surface = (surface - out.sdf[..., None] * out.gradient).detach()
    # Copy k posed the input as grow_k * R_k x + t_k, a similarity: its fitted surface mapped back
    # to the input's own frame is measured there, in the input's units, for every copy at once.
    unposed = ((surface - translation[:, None, :]) @ rotation / grow[:, None, None]).cpu().numpy()
    back = distance_to_sampled_surface(unposed.reshape(-1, 3), points).reshape(len(factors), -1)
    to_input = np.minimum(back, trim).mean(axis=1)
    return 0.5 * (to_fit.cpu().numpy().astype(np.float64) + to_input)


def _fit_and_score(model: torch.nn.Module, chunk: list[FitTarget], factors: np.ndarray, points: list[np.ndarray],
                   settings, code_stats: dict, loss_weights, template: np.ndarray, trim: float, device: torch.device,
                   optimise) -> np.ndarray:
    """Fit each target of ``chunk`` at each of the ``factors`` (one batch; every copy keeps the
    target's name, so all see the same samples) and score the fits on its ``points``:
    (len(chunk), len(factors)) trimmed mean distances, model units at the search's scale."""
    copies = []
    for target in chunk:
        for factor in factors:
            rotation, translation = scaled_pose(target, factor, template)
            copies.append(dataclasses.replace(
                target, surface_points=(target.surface_points * factor).astype(np.float32), fit_scale=False,
                init_rotation=rotation, init_translation=translation))
    state, _ = optimise(model, copies, settings, code_stats, loss_weights, device=device)
    k = len(factors)
    return np.stack([score_copies(model, points[i], state, slice(i * k, (i + 1) * k), factors, trim, device,
                                  covered_template(chunk[i], template))
                     for i in range(len(chunk))])


def sweep_scales(model: torch.nn.Module, targets: list[FitTarget], settings, code_stats: dict, loss_weights,
                 template: np.ndarray, *, device: torch.device, batch_size: int, optimise) -> None:
    """Choose each target's scale by short fits at several scales (see the module docstring)
    and apply it: the target's input frame is rescaled and its pose re-fitted at that scale
    (``template``: the mean face's front points (M, 3), model units);
    ``target.alignment["scale_sweep"]`` records the factors and scores. ``optimise`` is
    :func:`imface.fitting.fitter.optimise` (passed in: the fitter imports this module)."""
    count = settings.scale_sweep
    factors = sweep_factors(count, settings.scale_sweep_range)
    short = dataclasses.replace(settings, steps=settings.scale_sweep_steps or settings.steps, scale_lr=0.0)
    trim = settings.robust_distance or DEFAULT_FIT_ROBUST_MM / MM_PER_UNIT
    per_call = max(1, batch_size // count)
    rng = np.random.default_rng(0)
    for start in range(0, len(targets), per_call):
        chunk = targets[start:start + per_call]
        points = [face_points(target, template, rng) for target in chunk]
        scores = _fit_and_score(model, chunk, factors, points, short, code_stats, loss_weights, template, trim,
                                device, optimise)
        for target, row in zip(chunk, scores):
            factor = float(np.exp(parabola_minimum(np.log(factors), row)))
            target.init_rotation, target.init_translation = scaled_pose(target, factor, template)
            rescale_target(target, factor)
            target.alignment["scale_sweep"] = {
                "factors": factors.tolist(), "scores_mm": (MM_PER_UNIT * row).tolist(), "steps": short.steps,
                "chosen": factor, "at_edge": bool(np.argmin(row) in (0, count - 1))}
