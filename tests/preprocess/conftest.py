"""The preprocessing tests' shared batch: 3 synthetic identities x (neutral, smile, jaw_left),
preprocessed once per test session."""
from __future__ import annotations

import pytest

from imface.preprocess.run import preprocess_dataset
from imface.preprocess.scan import PreprocessConfig
from tests.preprocess import SMALL
from tests.synthetic_raw import hash_tree, write_builtin_dataset


@pytest.fixture(scope="session")
def processed(tmp_path_factory):
    """(raw folder, output folder, PreprocessSummary, hashes of the raw files before the run)."""
    raw = write_builtin_dataset(tmp_path_factory.mktemp("raw"), identities=3,
                                expressions=((1, "neutral"), (2, "smile"), (5, "jaw_left")))
    before = hash_tree(raw)
    out = tmp_path_factory.mktemp("out")
    summary = preprocess_dataset(raw, out, PreprocessConfig(**SMALL), progress=False)
    return raw, out, summary, before
