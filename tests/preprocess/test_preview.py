"""The preprocessing preview: one PNG, four non-blank panels with landmarks."""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from imface.frame import CANONICAL_LANDMARKS_MM
from imface.preprocess.preview import PREVIEW_PANEL_SIZE, write_preview

PAD = 4  # contact_sheet's default padding


def _face_like_mesh(n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bumpy height field in mm with a nose, and the canonical landmarks on it."""

    def height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dome = 60 * np.sqrt(np.clip(1 - (x / 95) ** 2 - (y / 120) ** 2, 0, 1)) - 30
        return dome + 30 * np.exp(-((x / 12) ** 2 + ((y - 5) / 28) ** 2))

    xs, ys = np.meshgrid(np.linspace(-90, 90, n), np.linspace(-100, 80, n))
    vertices = np.stack([xs.ravel(), ys.ravel(), height(xs, ys).ravel()], axis=1)
    ids = np.arange(n * n).reshape(n, n)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, 1:].ravel(), ids[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    landmarks = CANONICAL_LANDMARKS_MM.copy()
    landmarks[:, 2] = height(landmarks[:, 0], landmarks[:, 1])
    return vertices, faces, landmarks


def _panels(image: np.ndarray) -> list[np.ndarray]:
    """The four panels; the grid sits at the bottom right of the sheet."""
    height, width = image.shape[:2]
    step = PREVIEW_PANEL_SIZE + PAD
    return [
        image[height - (2 - r) * step : height - (2 - r) * step + PREVIEW_PANEL_SIZE,
              width - (2 - c) * step : width - (2 - c) * step + PREVIEW_PANEL_SIZE]
        for r in range(2) for c in range(2)
    ]


def test_preview_has_four_panels_with_surfaces_and_landmarks(tmp_path) -> None:
    vertices, faces, landmarks = _face_like_mesh()
    rotation = Rotation.from_euler("xyz", [15, -30, 5], degrees=True).as_matrix()
    raw_vertices = vertices @ rotation.T + [250.0, -40.0, 700.0]  # a posed scan, scanner frame
    raw_landmarks = landmarks @ rotation.T + [250.0, -40.0, 700.0]
    raw_landmarks[5] = np.nan  # a landmark missing from the source file
    inputs = [raw_vertices, faces, raw_landmarks, vertices / 100.0, faces, landmarks / 100.0]
    copies = [x.copy() for x in inputs]

    out = tmp_path / "previews" / "scan_001.png"
    write_preview(out, *inputs, title="scan_001")

    for given, original in zip(inputs, copies):  # inputs are left untouched
        assert np.array_equal(given, original, equal_nan=True)
    with Image.open(out) as png:
        assert png.format == "PNG"
        image = np.asarray(png.convert("RGB")).astype(int)
    assert image.shape[0] > 2 * PREVIEW_PANEL_SIZE and image.shape[1] > 2 * PREVIEW_PANEL_SIZE
    for panel in _panels(image):
        surface = (panel < 250).any(axis=2).mean()
        red = ((panel[..., 0] > 170) & (panel[..., 1] < 80) & (panel[..., 2] < 80)).sum()
        assert surface > 0.05, "a panel is blank"
        assert red > 20, "a panel shows no landmarks"
    assert (image[: image.shape[0] - 2 * (PREVIEW_PANEL_SIZE + PAD)] < 128).any()  # title/labels drawn


def test_preview_of_a_raw_point_cloud_without_landmarks(tmp_path) -> None:
    vertices, faces, landmarks = _face_like_mesh(40)
    out = tmp_path / "cloud.png"
    write_preview(out, vertices, None, None, vertices / 100.0, faces, landmarks / 100.0)
    with Image.open(out) as png:
        image = np.asarray(png.convert("RGB")).astype(int)
    for panel in _panels(image):
        assert (panel < 250).any(axis=2).mean() > 0.01
