"""Throughput of one full ImFace training step: batched model vs a per-scan, per-region loop.

A step is forward (SDF and spatial gradients on surface + space points, landmark
warps) + all losses (both Eikonal terms included) + backward + Adam step. The loop
reference (imface.fields.reference) evaluates the same weights with Python loops
over scans and regions. Prints parameter counts (ours and the authors' variant),
then points/s per setting; the last line is the headline.

    python -m bench.train_step [--threads 2] [--scans 4] [--points 1024 16384] [--profile]
    python -m bench.train_step --device cuda [--precision fp32 tf32 bf16 fp16]

With --device cuda it times the batched step alone at the ``paper`` preset's batch (72 scans x
16,384 points unless --scans/--points say otherwise) for each --precision, and prints points/s.

--profile also prints where the batched step's time goes, per aten op and input
shapes (timed one op at a time; torch.profiler inflates the large elementwise ops
several-fold here, so its table misleads).
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import statistics
import time
from typing import Any, Callable

import torch

from imface.config import LossConfig, ModelConfig
from imface.frame import CANONICAL_LANDMARKS_MM, MM_PER_UNIT
from imface.fields.reference import loop_reference_model
from imface.losses import compute_losses
from imface.model import ImFace
from imface.threads import set_threads
from imface.training.precision import Precision
from torch.utils._python_dispatch import TorchDispatchMode


def make_batch(scans: int, points: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A synthetic training batch with half surface and half space points per scan."""
    template = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
    half = points // 2
    directions = torch.nn.functional.normalize(torch.randn(scans, half, 3, generator=generator), dim=-1)
    return {
        "surface_points": directions * 0.6,
        "surface_normals": directions,
        "space_points": (torch.rand(scans, points - half, 3, generator=generator) * 2 - 1) * 0.9,
        "space_sdf": torch.randn(scans, points - half, generator=generator) * 0.1,
        "space_grad": torch.nn.functional.normalize(torch.randn(scans, points - half, 3, generator=generator), dim=-1),
        "landmarks": template.expand(scans, 68, 3) + 0.01 * torch.randn(scans, 68, 3, generator=generator),
        "landmarks_mask": torch.ones(scans, 68, dtype=torch.bool),
        "neutral_landmarks": template.expand(scans, 68, 3).clone(),
        "neutral_landmarks_mask": torch.ones(scans, 68, dtype=torch.bool),
        "identity_index": torch.arange(scans) % 4,
        "expression_index": torch.arange(scans),
        "neutral": torch.arange(scans) % 4 == 0,
    }


def _adam(model: torch.nn.Module) -> torch.optim.Optimizer:
    try:  # one fused kernel for all parameters where this torch build has it on CPU
        return torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap (no mmap/munmap and page faults per large tensor).

    PyTorch has no caching allocator on CPU, so every large activation is a fresh mmap
    whose pages fault in on first touch; this dominates big batched steps.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    no_mmap = libc.mallopt(m_mmap_max, 0)  # large blocks come from the reusable heap too
    keep = libc.mallopt(m_trim_threshold, (1 << 31) - 1)  # never give freed heap back mid-run
    return bool(no_mmap and keep and libc.mallopt(m_top_pad, 64 << 20))


def make_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], precision: str = "fp32") -> Callable[[], None]:
    """One full training step of ``model`` on ``batch`` (forward, all losses, backward, Adam),
    at a ``train.precision`` (imface.training.precision), on the batch's device."""
    optimizer = _adam(model)
    losses_config = LossConfig()
    device = batch["surface_points"].device
    mode = Precision(precision, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with mode.autocast():
            outputs = model(batch)
        losses = compute_losses(outputs, batch, losses_config, model.config)
        mode.backward(losses["total"], [optimizer])
        mode.step([optimizer])
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def time_interleaved(steps: list[Callable[[], None]], repeats: int) -> list[float]:
    """Median seconds per call of each step, run in turns so that load drift hits all alike."""
    for step in steps:  # warm-up
        step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for index, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


class _OpTimer(TorchDispatchMode):
    """Seconds and calls per (aten op, input shapes), summed over what runs under it."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)][:3]
        entry = self.totals[f"{func} {shapes}"]
        entry[0] += time.perf_counter() - start
        entry[1] += 1
        return out


def profile_ops(step: Callable[[], None], steps: int = 3, top: int = 20) -> None:
    """Print the ``top`` ops of ``step`` by time per step."""
    step()
    timer = _OpTimer()
    start = time.perf_counter()
    with timer:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    in_ops = sum(seconds for seconds, _ in timer.totals.values()) / steps
    print(f"profile (batched): {1e3 * wall:.1f} ms/step under the timer, {1e3 * in_ops:.1f} ms in ops")
    for name, (seconds, calls) in sorted(timer.totals.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {1e3 * seconds / steps:8.2f} ms {calls // steps:5d}x  {name}")


def authors_parameter_estimate() -> tuple[int, int]:
    """(total, in hypernetworks) of the authors' released variant, from its config.

    There, each Mini-Nets block is ONE shared SIREN (5 linear layers, 128 wide, input
    K*3 = 15, output K*channels) and SIREN-style hypernets with one hidden layer of 128
    generate each weight/bias tensor separately; the fusion nets are 128 wide with
    LayerNorm; the Landmark-Nets 256 wide.
    """
    def linear(i: int, o: int) -> int:
        return i * o + o

    def mini_net_tensors(out: int) -> list[int]:
        dims = [15, 128, 128, 128, 128, out]
        return [n for i in range(5) for n in (dims[i] * dims[i + 1], dims[i + 1])]

    def hypernets(out: int) -> int:
        return sum(linear(128, 128) * 2 + linear(128, numel) for numel in mini_net_tensors(out))

    fusion = linear(3, 128) + 256 + linear(128, 128) + 256 + linear(128, 5) + 10
    hyper = hypernets(5 * 6) + hypernets(5 * 7)
    template = sum(mini_net_tensors(5))
    landmarks = linear(256, 256) + linear(256, 256) + linear(256, 15) + linear(128, 256) + linear(256, 256) + linear(256, 15)
    return hyper + template + 3 * fusion + landmarks, hyper


def cuda_throughput(args: argparse.Namespace) -> None:
    """Points/s of the batched step on CUDA for each precision, at the paper batch by default."""
    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    scans = 72 if args.scans == 4 else args.scans  # --scans left at its CPU default: the paper's batch
    points = [16384] if args.points == [1024, 16384] else args.points
    torch.manual_seed(0)
    template = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
    print(f"device {torch.cuda.get_device_name(device)}, torch {torch.__version__}, {scans} scans per batch")
    rates = {}
    for count in points:
        batch = {k: v.to(device) for k, v in make_batch(scans, count, torch.Generator().manual_seed(count)).items()}
        for precision in args.precision:
            model = ImFace(ModelConfig(), 4, scans, template).to(device)
            torch.cuda.reset_peak_memory_stats(device)
            seconds = time_interleaved([make_step(model, batch, precision)], args.steps)[0]
            rates[(count, precision)] = scans * count / seconds
            print(f"{count:>6} points/scan, {precision}: {seconds:7.4f} s/step {rates[(count, precision)]:12.0f} points/s, "
                  f"peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB", flush=True)
    summary = ", ".join(f"{p} {r / 1e6:.2f} M" for (_, p), r in rates.items())
    print(f"train step (cuda, {scans} scans x {points[-1]} points): points/s {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scans", type=int, default=4)
    parser.add_argument("--points", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (fewer at > 4096 points)")
    parser.add_argument("--tune-malloc", action="store_true", help="keep freed memory in the heap (glibc mallopt)")
    parser.add_argument("--profile", action="store_true", help="also print the batched step's time per op")
    parser.add_argument("--device", default="cpu", help="cpu (batched vs loop) or cuda (batched, per precision)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "tf32", "bf16", "fp16"],
                        help="train.precision values timed on CUDA")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.device.startswith("cuda"):
        cuda_throughput(args)
        return
    if args.tune_malloc and not tune_malloc():
        print("warning: could not tune malloc (not glibc?)")

    torch.manual_seed(0)
    template = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
    model = ImFace(ModelConfig(), 4, args.scans, template)
    reference = loop_reference_model(model)
    total = sum(p.numel() for p in model.parameters())
    hyper = sum(p.numel() for n, p in model.named_parameters() if ".hyper." in n)
    authors_total, authors_hyper = authors_parameter_estimate()
    print(f"parameters: ours {total / 1e6:.2f} M, {100 * hyper / total:.1f}% in hypernets "
          f"(5 separate local SIRENs {3 * (1 + 2 * model.config.positional_frequencies)}->32->32->32->out per field, "
          "one 3-layer 64-wide hypernet each)")
    print(f"parameters: authors' variant ~{authors_total / 1e6:.1f} M (estimate), {100 * authors_hyper / authors_total:.1f}% "
          "in hypernets: they generate one shared 128-wide 5-layer SIREN per block, one hypernet per tensor")
    print(f"threads {torch.get_num_threads()}, {args.scans} scans per batch, half surface / half space points, "
          f"malloc {'tuned' if args.tune_malloc else 'default'}")

    speedups = {}
    for points in args.points:
        batch = make_batch(args.scans, points, torch.Generator().manual_seed(points))
        steps = args.steps if points <= 4096 else max(1, args.steps - 2)
        fast, slow = time_interleaved([make_step(model, batch), make_step(reference, batch)], steps)
        rate = lambda seconds: args.scans * points / seconds  # noqa: E731
        speedups[points] = slow / fast
        print(f"{points:>6} points/scan: batched {fast:7.3f} s/step {rate(fast):9.0f} points/s | "
              f"loop {slow:7.3f} s/step {rate(slow):9.0f} points/s | speedup {slow / fast:.2f}x")
    first, *rest = args.points
    if args.profile:
        profile_ops(make_step(model, make_batch(args.scans, first, torch.Generator().manual_seed(first))))
    extra = "".join(f", {speedups[p]:.1f}x at {p}" for p in rest)
    print(f"train step: speedup {speedups[first]:.1f}x at {first} points/scan (batched vs loop){extra}")


if __name__ == "__main__":
    main()
