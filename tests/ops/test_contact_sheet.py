"""Contact sheets (grid layout, blanks, labels) and atomic PNG writing."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imface.errors import ImfaceError
from imface.ops.contact_sheet import contact_sheet, save_png


def _tile(height: int, width: int, value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 200, size=(height, width, 3), dtype=np.uint8)


def test_grid_size_is_cells_plus_padding() -> None:
    images = [[_tile(20, 30, r * 3 + c) for c in range(3)] for r in range(2)]
    sheet = contact_sheet(images, pad=4)
    assert sheet.shape == (2 * 20 + 3 * 4, 3 * 30 + 4 * 4, 3)
    assert sheet.dtype == np.uint8


def test_pictures_are_copied_into_their_cells() -> None:
    pad = 5
    a, b, c = _tile(10, 20, 1), _tile(16, 12, 2), _tile(8, 8, 3)
    sheet = contact_sheet([[a, b], [c]], pad=pad)
    col_w, row_h = [20, 12], [16, 8]  # widest per column, tallest per row
    assert sheet.shape == (sum(row_h) + 3 * pad, sum(col_w) + 3 * pad, 3)
    # Naive placement: each picture centred in its cell.
    top_a = pad + (16 - 10) // 2
    assert np.array_equal(sheet[top_a : top_a + 10, pad : pad + 20], a)
    left_b = pad + 20 + pad
    assert np.array_equal(sheet[pad : pad + 16, left_b : left_b + 12], b)
    top_c, left_c = pad + 16 + pad, pad + (20 - 8) // 2
    assert np.array_equal(sheet[top_c : top_c + 8, left_c : left_c + 8], c)


def test_none_cells_and_short_rows_are_blank() -> None:
    pad = 3
    a = _tile(10, 10, 4)
    sheet = contact_sheet([[a, None], [None]], pad=pad)
    assert sheet.shape == (2 * 10 + 3 * pad, 2 * 10 + 3 * pad, 3)
    assert (sheet[pad : pad + 10, 2 * pad + 10 : 2 * pad + 20] == 255).all()
    assert (sheet[2 * pad + 10 :, :] == 255).all()  # the whole second row is blank
    assert not (sheet[pad : pad + 10, pad : pad + 10] == 255).all()


def test_labels_and_title_add_room_and_ink() -> None:
    images = [[_tile(40, 40, 1), _tile(40, 40, 2)], [_tile(40, 40, 3), None]]
    plain = contact_sheet(images, pad=4)
    labelled = contact_sheet(
        images, row_labels=["raw", "processed"], col_labels=["front", "side"], title="scan 7", pad=4
    )
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]
    # The grid sits at the bottom right; everything above and left of it is labels.
    top_band = labelled[: labelled.shape[0] - plain.shape[0]]
    left_band = labelled[:, : labelled.shape[1] - plain.shape[1]]
    assert (top_band < 128).any() and (left_band < 128).any()
    assert np.array_equal(labelled[-plain.shape[0] :, -plain.shape[1] :], plain)


def test_rgba_and_grey_cells_are_composited() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent -> background
    grey = np.full((4, 4), 50, dtype=np.uint8)
    sheet = contact_sheet([[rgba, grey]], pad=0)
    assert (sheet[:, :4] == 255).all()
    assert (sheet[:, 4:] == 50).all()


def test_bad_sheets_raise_imface_errors() -> None:
    with pytest.raises(ImfaceError, match="no pictures"):
        contact_sheet([[None, None]])
    with pytest.raises(ImfaceError, match="row labels"):
        contact_sheet([[_tile(4, 4, 0)]], row_labels=["a", "b"])
    with pytest.raises(ImfaceError, match="uint8"):
        contact_sheet([[np.zeros((4, 4, 3), dtype=np.float32)]])


def test_save_png_round_trips_atomically(tmp_path) -> None:
    image = _tile(12, 17, 9)
    out = tmp_path / "sub" / "sheet.png"
    save_png(out, image)
    with Image.open(out) as png:
        assert png.format == "PNG"
        assert np.array_equal(np.asarray(png), image)
    assert sorted(p.name for p in out.parent.iterdir()) == ["sheet.png"]  # no temp files left
    with pytest.raises(ImfaceError, match="uint8"):
        save_png(tmp_path / "bad.png", image.astype(np.float64))
    assert not (tmp_path / "bad.png").exists()
