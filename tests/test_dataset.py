"""The memory-mapped training dataset over a processed folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import imface.dataset as dataset_module
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, MM_PER_UNIT
from imface.dataset import (
    EpochBatchSampler,
    FaceScanDataset,
    CodeTables,
    build_code_tables,
    load_scan_index,
    read_scan_landmarks,
    template_landmarks,
)
from imface.errors import ImfaceError
from tests.synthetic_processed import sphere_of, write_synthetic_dataset

FIVE_ONLY = "002/2_smile"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("faces"), num_identities=3, test_identities=1,
                                   surface_points=300, space_points=200, five_only=(FIVE_ONLY,))


def _dataset(data_dir, embedding="per_scan", seed=0, surface=64, space=48):
    index = load_scan_index(data_dir)
    codes = build_code_tables(index, embedding)
    return FaceScanDataset(index, codes, surface_points_per_scan=surface, space_points_per_scan=space, seed=seed)


def test_code_tables_cover_the_train_split_only(data_dir):
    index = load_scan_index(data_dir)
    per_scan = build_code_tables(index, "per_scan")
    assert per_scan.identities == {"001": 0, "002": 1}  # identity 003 is the test split
    assert sorted(per_scan.expressions) == ["001/2_smile", "001/3_jaw_open", "002/2_smile", "002/3_jaw_open"]
    assert sorted(per_scan.expressions.values()) == [0, 1, 2, 3]
    per_name = build_code_tables(index, "per_name")
    assert per_name.expressions == {"jaw_open": 0, "smile": 1}
    assert build_code_tables(index).to_json()["expression_embedding"] == "per_scan"


def test_joint_model_gives_neutral_scans_their_own_expression_codes(data_dir):
    index = load_scan_index(data_dir)
    joint = build_code_tables(index, "per_scan", neutral_suppression=False)
    neutral = [index.scans[n] for n in index.train if index.scans[n].neutral]
    assert neutral and all(scan.name in joint.expressions for scan in neutral)
    rows = {joint.expression_row(scan) for scan in neutral}
    assert len(rows) == len(neutral)  # no shared placeholder row
    assert CodeTables.from_json(joint.to_json()) == joint
    per_name = build_code_tables(index, "per_name", neutral_suppression=False)
    assert "neutral" in per_name.expressions


def test_batch_shapes_and_types_follow_the_contract(data_dir):
    ds = _dataset(data_dir)
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False)))
    shapes = {k: tuple(v.shape) for k, v in batch.items()}
    assert shapes == {
        "surface_points": (3, 64, 3), "surface_normals": (3, 64, 3), "space_points": (3, 48, 3),
        "space_sdf": (3, 48), "space_grad": (3, 48, 3), "landmarks": (3, 68, 3), "landmarks_mask": (3, 68),
        "neutral_landmarks": (3, 68, 3), "neutral_landmarks_mask": (3, 68), "identity_index": (3,),
        "expression_index": (3,), "neutral": (3,),
    }
    assert batch["surface_points"].dtype == torch.float32 and batch["space_sdf"].dtype == torch.float32
    assert batch["identity_index"].dtype == torch.int64 and batch["expression_index"].dtype == torch.int64
    assert batch["neutral"].dtype == torch.bool and batch["landmarks_mask"].dtype == torch.bool


def test_items_are_memory_mapped_rows_of_the_scan(data_dir, monkeypatch):
    modes = []
    real_load = np.load

    def spy(path, *args, **kwargs):
        modes.append(kwargs.get("mmap_mode"))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module.np, "load", spy)
    ds = _dataset(data_dir)
    item = ds[1]
    assert modes and all(m == "r" for m in modes)
    scan = ds.scans[1]
    surface = real_load(scan.folder / "surface_points.npy")
    # every returned point is a row of the file, and normals/sdf/grad belong to the same rows
    dist = np.linalg.norm(item["surface_points"].numpy()[:, None] - surface[None], axis=-1)
    assert dist.min(axis=1).max() == 0.0
    identity_row = ds.codes.identities[scan.identity]
    centre, radius = sphere_of(identity_row, scan.expression)
    space = item["space_points"].numpy().astype(np.float64)
    np.testing.assert_allclose(item["space_sdf"].numpy(), np.linalg.norm(space - centre, axis=1) - radius, atol=1e-5)
    normals = (item["surface_points"].numpy() - centre) / radius
    np.testing.assert_allclose(item["surface_normals"].numpy(), normals, atol=1e-5)


def test_masks_and_neutral_landmarks(data_dir):
    ds = _dataset(data_dir)
    names = [s.name for s in ds.scans]
    five = ds[names.index(FIVE_ONLY)]
    assert five["landmarks_mask"].sum() == 5
    assert five["landmarks_mask"][list(FIVE_LANDMARK_IDS)].all()
    assert (five["landmarks"][~five["landmarks_mask"]] == 0).all()
    full = ds[names.index("001/3_jaw_open")]
    assert full["landmarks_mask"].all()
    # the neutral landmarks are the same person's neutral scan's, not this scan's
    neutral_points, _ = read_scan_landmarks(data_dir / "001/1_neutral")
    assert torch.equal(full["neutral_landmarks"], torch.from_numpy(neutral_points))
    assert not torch.equal(full["neutral_landmarks"], full["landmarks"])
    assert full["neutral_landmarks_mask"].all()
    smile = ds[names.index("001/2_smile")]
    assert smile["expression_index"] == ds.codes.expressions["001/2_smile"] and not smile["neutral"]
    neutral = ds[names.index("002/1_neutral")]
    assert neutral["neutral"] and neutral["expression_index"] == 0


def test_sampling_is_deterministic_per_seed_and_epoch(data_dir):
    a, b, c = _dataset(data_dir, seed=3), _dataset(data_dir, seed=3), _dataset(data_dir, seed=4)
    assert torch.equal(a[2]["surface_points"], b[2]["surface_points"])
    assert not torch.equal(a[2]["surface_points"], c[2]["surface_points"])
    before = a[2]["space_points"]
    a.set_epoch(1)
    assert not torch.equal(before, a[2]["space_points"])
    b.set_epoch(1)
    assert torch.equal(a[2]["space_points"], b[2]["space_points"])
    assert torch.equal(c[(1, 2)]["space_points"], _dataset(data_dir, seed=4)[(1, 2)]["space_points"])
    assert torch.equal(b[(0, 2)]["space_points"], before)  # (epoch, index) keys ignore set_epoch


def test_more_points_than_stored_repeats_rows(data_dir):
    item = _dataset(data_dir, surface=500, space=250)[0]
    assert item["surface_points"].shape == (500, 3) and item["space_sdf"].shape == (250,)
    assert len(torch.unique(item["surface_points"], dim=0)) <= 300


def test_template_is_masked_mean_with_canonical_fallback():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, 68, 3)).astype(np.float32)
    masks = np.zeros((3, 68), bool)
    masks[0] = True
    masks[1, list(FIVE_LANDMARK_IDS)] = True
    masks[:, 0] = False  # row 0 given by nobody
    result = template_landmarks(points, masks)
    for row in range(68):  # naive reference
        given = [points[s, row] for s in range(3) if masks[s, row]]
        expected = np.mean(given, axis=0) if given else CANONICAL_LANDMARKS_MM[row] / MM_PER_UNIT
        np.testing.assert_allclose(result[row], expected, rtol=1e-6, atol=1e-6)


def test_neutral_template_comes_from_neutral_train_scans(data_dir):
    ds = _dataset(data_dir)
    expected = np.mean([read_scan_landmarks(data_dir / f"{i}/1_neutral")[0] for i in ("001", "002")], axis=0)
    np.testing.assert_allclose(ds.neutral_template(), expected, atol=1e-6)


def test_refuses_paths_escaping_the_root(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", num_identities=1, expressions=("neutral",),
                                   surface_points=8, space_points=8)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["scans"][0]["path"] = "../outside"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImfaceError, match="leaves the dataset folder"):
        load_scan_index(root)


def test_missing_point_file_is_a_one_line_error(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", num_identities=1, expressions=("neutral",),
                                   surface_points=8, space_points=8)
    (root / "001/1_neutral/space_sdf.npy").unlink()
    index = load_scan_index(root)
    with pytest.raises(ImfaceError, match="space_sdf.npy: missing"):
        FaceScanDataset(index, build_code_tables(index), surface_points_per_scan=4, space_points_per_scan=4)


def _batches(n: int, world: int, rank: int, per_rank: int, start: int, stop: int) -> list[list[tuple[int, int]]]:
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=7, drop_last=True)
    return list(EpochBatchSampler(sampler, per_rank, start, stop))


def test_epoch_batches_split_over_ranks_and_resume_mid_epoch():
    # 11 scans, 4 per global batch: 2 steps per epoch, 3 scans left out each epoch
    single = _batches(11, 1, 0, 4, 0, 7)
    assert len(single) == 7 and [b[0][0] for b in single] == [0, 0, 1, 1, 2, 2, 3]
    for epoch in range(3):
        seen = [i for b in single if b[0][0] == epoch for _, i in b]
        assert len(set(seen)) == 8  # no scan twice within an epoch
    assert single[:2] != single[2:4]  # reshuffled every epoch
    ranks = [_batches(11, 2, r, 2, 0, 7) for r in (0, 1)]
    for step in range(7):  # the two ranks' shares make up exactly the single process's batch
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(single[step])
    assert _batches(11, 1, 0, 4, 3, 7) == single[3:]  # starting inside epoch 1


def test_near_surface_samples_are_read_as_extra_space_samples(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", num_identities=2, surface_points=64, space_points=64)
    index = load_scan_index(root)
    codes = build_code_tables(index)
    with pytest.raises(ImfaceError, match="near_points.npy.*re-run imface preprocess.*near_points_per_scan=0"):
        FaceScanDataset(index, codes, surface_points_per_scan=8, space_points_per_scan=4, near_points_per_scan=6)
    for scan in index.scans.values():  # near samples marked by an SDF no uniform sample has
        np.save(scan.folder / "near_points.npy", np.full((30, 3), 0.5, np.float32))
        np.save(scan.folder / "near_sdf.npy", np.full(30, 7.0, np.float32))
        np.save(scan.folder / "near_grad.npy", np.tile(np.float32([0, 0, 1]), (30, 1)))
    dataset = FaceScanDataset(index, codes, surface_points_per_scan=8, space_points_per_scan=4, near_points_per_scan=6)
    item = dataset[(0, 1)]
    assert item["surface_points"].shape == (8, 3) and item["space_points"].shape == (10, 3)
    assert item["space_sdf"].shape == (10,) and item["space_grad"].shape == (10, 3)
    assert int((item["space_sdf"] == 7.0).sum()) == 6  # 4 uniform + 6 near, in that order
    assert torch.all(item["space_sdf"][4:] == 7.0)
    for scan in index.scans.values():
        np.save(scan.folder / "near_sdf.npy", np.zeros(29, np.float32))
    with pytest.raises(ImfaceError, match="near_sdf.npy.*29 rows"):
        dataset[(0, 0)]
