"""Where a raw scan sits: its unit (from the outer-eye-corner distance), the rigid alignment of its
landmarks onto the canonical frame (:mod:`imface.frame`), the landmarks' distance to the surface,
and the 4x4 maps between the raw frame and the model frame.

``p_model = (unit_scale_to_mm / 100) * R p_raw + t / 100`` with ``t`` in mm (1 model unit = 100 mm).
"""
from __future__ import annotations

import os
from pathlib import Path

import igl
import numpy as np

from imface.errors import ImfaceError
from imface.frame import (
    CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, LENGTH_UNITS, MM_PER_INPUT_UNIT, MM_PER_UNIT, NOSE_TIP_POSITION_MM,
)
from imface.io.landmarks import Landmarks
from imface.ops.rigid import DegenerateConfigurationError, ReflectionError, kabsch


def detect_unit_scale(
    five_raw: np.ndarray, unit: str | None, eye_range_mm: tuple[float, float], path: str | os.PathLike
) -> tuple[str, float]:
    """Unit name and its factor to mm, from the outer-eye-corner distance (rows 0, 1 of ``five_raw``).

    With ``unit`` None, tries mm, cm and m and takes the one whose distance lands in
    ``eye_range_mm``; with a given unit, checks that it does.
    """
    distance = float(np.linalg.norm(five_raw[0] - five_raw[1]))
    low, high = eye_range_mm
    if unit is not None:
        in_mm = distance * MM_PER_INPUT_UNIT[unit]
        if not low <= in_mm <= high:
            raise ImfaceError(
                path, f"outer-eye-corner distance is {in_mm:.4g} mm with unit {unit}, outside the plausible "
                f"{low:g}-{high:g} mm; check the unit or the landmarks",
            )
        return unit, MM_PER_INPUT_UNIT[unit]
    for name in LENGTH_UNITS:
        factor = MM_PER_INPUT_UNIT[name]
        if low <= distance * factor <= high:
            return name, factor
    raise ImfaceError(
        path, f"outer-eye-corner distance is {distance:.4g} units: not a face in mm, cm or m; pass --unit",
    )


def _surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance from points (N, 3) to the triangle mesh (libigl AABB)."""
    squared, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
    )
    return np.sqrt(squared)


def align_landmarks(landmarks_mm: Landmarks, lmk_path: Path, *, align: str = "landmarks",
                    max_rms_mm: float = 30.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation R (3,3) and translation t (3,) mm into the canonical frame, and the Kabsch RMS (mm).

    align: "landmarks" (Kabsch onto the canonical landmarks, refused above ``max_rms_mm`` RMS) or
    "none" (only the shift that puts the nose tip in place).
    """
    source = landmarks_mm.points
    target = CANONICAL_LANDMARKS_MM if len(source) == 68 else CANONICAL_LANDMARKS_MM[list(FIVE_LANDMARK_IDS)]
    if align == "none":
        rotation, translation = np.eye(3), np.zeros(3)
    else:
        try:
            rotation, translation = kabsch(source, target)
        except ReflectionError:
            raise ImfaceError(
                lmk_path, "landmark configuration is mirrored: left/right swapped, or not in iBUG order"
            ) from None
        except DegenerateConfigurationError as err:
            raise ImfaceError(lmk_path, f"degenerate landmark configuration ({err})") from None
    nose = landmarks_mm.five[2] @ rotation.T + translation
    translation = translation + (np.asarray(NOSE_TIP_POSITION_MM) - nose)  # nose tip exactly at (0, 0, 40) mm
    residual = source @ rotation.T + translation - target
    rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    if align != "none" and rms > max_rms_mm:
        raise ImfaceError(
            lmk_path, f"landmarks fit the iBUG layout with {rms:.1f} mm RMS error (limit "
            f"{max_rms_mm:g} mm): wrong order or not iBUG landmarks?",
        )
    return rotation, translation, rms


def landmark_surface_distance(landmarks_mm: Landmarks, vertices_mm: np.ndarray, faces: np.ndarray,
                              lmk_path: Path, max_distance_mm: float = 5.0) -> np.ndarray:
    """(N,) mm from each landmark (N, 3) mm to the raw surface (V, 3) mm / (F, 3); refuses landmarks
    farther than ``max_distance_mm``."""
    distance = _surface_distance(landmarks_mm.points, vertices_mm, faces)
    worst = int(np.argmax(distance))
    if distance[worst] > max_distance_mm:
        label = (list(range(68)) if landmarks_mm.ibug68 is not None else list(FIVE_LANDMARK_IDS))[worst]
        raise ImfaceError(
            lmk_path, f"landmarks off the surface ({int((distance > max_distance_mm).sum())} of "
            f"{len(distance)}): iBUG {label} is {distance[worst]:.1f} mm from the mesh "
            f"(limit {max_distance_mm:g} mm)",
        )
    return distance


def raw_to_model_matrix(rotation: np.ndarray, translation_mm: np.ndarray, unit_scale_to_mm: float) -> np.ndarray:
    """4x4 of ``p_model = (u / 100) R p_raw + t / 100`` (column vectors)."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * (unit_scale_to_mm / MM_PER_UNIT)
    matrix[:3, 3] = np.asarray(translation_mm) / MM_PER_UNIT
    return matrix


def model_to_raw_matrix(rotation: np.ndarray, translation_mm: np.ndarray, unit_scale_to_mm: float) -> np.ndarray:
    """Exact inverse of :func:`raw_to_model_matrix`: ``p_raw = R^T (100 p_model - t) / u``."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.T * (MM_PER_UNIT / unit_scale_to_mm)
    matrix[:3, 3] = -(rotation.T @ np.asarray(translation_mm)) / unit_scale_to_mm
    return matrix


def apply_matrix(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) points through a 4x4 affine matrix -> (N, 3) float64."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:3, :3].T + matrix[:3, 3]
