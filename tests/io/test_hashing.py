"""sha256_file: the same digest as hashlib over the whole file, read in blocks."""
from __future__ import annotations

import hashlib

import numpy as np

from imface.io.hashing import sha256_file


def test_digest_matches_hashlib_across_block_boundaries(tmp_path):
    for size in (0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 17):
        data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
        path = tmp_path / f"f{size}"
        path.write_bytes(data)
        assert sha256_file(path) == hashlib.sha256(data).hexdigest(), size


def test_one_changed_byte_changes_the_digest(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 5000)
    (tmp_path / "b").write_bytes(b"x" * 4999 + b"y")
    assert sha256_file(tmp_path / "a") != sha256_file(tmp_path / "b")
