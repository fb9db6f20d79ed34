"""Process groups for multi-GPU / multi-node training with the same code as a single process.

``torchrun --nproc_per_node N -m imface train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; :func:`init_distributed` reads them and starts a process
group (gloo on CPU, nccl on CUDA). Without them it is a plain single process.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from imface.devices import resolve_device
from imface.errors import ImfaceError


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when init_distributed started the group (and shutdown ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _rank_device(device: str, local_rank: int) -> torch.device:
    """This rank's device; a CUDA rank also makes its GPU the current one (NCCL and cuda:N default)."""
    torch_device = resolve_device(device, local_rank)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    return torch_device


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group described by the torchrun environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
        return DistributedContext(rank, world_size, local_rank, _rank_device(device, local_rank), False)
    torch_device = _rank_device(device, local_rank)
    if world_size <= 1:
        return DistributedContext(0, 1, 0, torch_device, False)
    if not dist.is_available():
        raise ImfaceError(None, "this torch build has no torch.distributed, so WORLD_SIZE > 1 cannot be used")
    backend = "nccl" if torch_device.type == "cuda" else "gloo"
    kwargs = {}
    if backend == "nccl" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        kwargs["device_id"] = torch_device  # binds the communicator to this rank's GPU (torch >= 2.3)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size, **kwargs)
    return DistributedContext(rank, world_size, local_rank, torch_device, True)


def shutdown(ctx: DistributedContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(ctx: DistributedContext, flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any rank (so all ranks stop or roll back together)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(ctx: DistributedContext, values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of a tensor over ranks (for logging the global batch's losses)."""
    if not ctx.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()
