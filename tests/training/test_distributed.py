"""DDP: 2 gloo processes x B/2 scans train exactly like 1 process x B scans."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from imface.training import checkpoint as ckpt
from imface.config.experiment import apply_overrides, preset
from imface.training.distributed import init_distributed, resolve_device
from imface.training.trainer import train
from imface.errors import ImfaceError
from tests.synthetic_processed import write_synthetic_dataset

OVERRIDES = ["train.max_steps=3", "data.scans_per_batch=4", "train.lr=1e-4", "train.code_lr=1e-4"]
STEPS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, runs: list[tuple[int, str, str]]) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    for port, data, exp in runs:  # each train() call starts and ends its own process group, as under torchrun
        os.environ["MASTER_PORT"] = str(port)
        train(apply_overrides(preset("tiny"), OVERRIDES), data, exp, device="cpu", progress=False)


def _losses(exp: Path) -> list[dict]:
    return [json.loads(line) for line in (exp / "logs/losses.jsonl").read_text().splitlines()]


def test_two_processes_match_one(tmp_path):
    # Masked terms (expression codes of non-neutral scans, the landmark rows given) average per scan
    # first, so ranks holding different mixes of neutral / expression and 68 / 5-landmark scans still
    # add up to the single-process loss.
    mixed = write_synthetic_dataset(tmp_path / "mixed", num_identities=3, expressions=("neutral", "smile", "jaw_open"),
                                    surface_points=256, space_points=256, five_only=("002/2_smile", "001/3_jaw_open"))
    # every batch of this one is all-neutral: ExpNet's output is suppressed, yet DDP must not break
    neutral = write_synthetic_dataset(tmp_path / "neutral", num_identities=4, expressions=("neutral",),
                                      surface_points=256, space_points=256)
    runs = [(_free_port(), str(mixed), str(tmp_path / "ddp_mixed")),
            (_free_port(), str(neutral), str(tmp_path / "ddp_neutral"))]
    mp.spawn(_worker, args=(2, runs), nprocs=2, join=True)
    config = apply_overrides(preset("tiny"), OVERRIDES)
    for data, name in ((mixed, "mixed"), (neutral, "neutral")):
        single, ddp = tmp_path / f"single_{name}", tmp_path / f"ddp_{name}"
        train(config, data, single, device="cpu", progress=False)
        a, b = _losses(single), _losses(ddp)
        assert [r["step"] for r in b] == list(range(1, STEPS + 1))
        for ra, rb in zip(a, b):
            for key in ra:
                if key.startswith("loss/"):
                    assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-6), (name, ra["step"], key)
        start_a, start_b = load_file(str(ckpt.checkpoint_path(single, 0))), load_file(str(ckpt.checkpoint_path(ddp, 0)))
        wa, wb = load_file(str(ckpt.checkpoint_path(single, STEPS))), load_file(str(ckpt.checkpoint_path(ddp, STEPS)))
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(start_a[key], start_b[key])  # the same initial weights
            if not wa[key].is_floating_point():
                assert torch.equal(wa[key], wb[key])
                continue
            # Adam divides by sqrt(v): a gradient element that is ~0 turns float summation-order noise into
            # an update difference of up to the lr, so a few elements in ~10^5 may differ by more than 1e-5.
            diff = (wb[key] - wa[key]).abs()
            assert (diff > 1e-5).float().mean() <= 1e-4, (name, key, diff.max())
            update = (wa[key] - start_a[key]).norm()
            assert diff.norm() <= 1e-2 * update + 1e-7, (name, key, diff.norm(), update)
        run = json.loads((ddp / "run.json").read_text())
        assert run["world_size"] == 2


def test_single_process_context_without_torchrun(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device == torch.device("cpu")


def test_bad_device_names_are_refused():
    with pytest.raises(ImfaceError, match="--device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ImfaceError, match="no CUDA"):
            resolve_device("cuda")
