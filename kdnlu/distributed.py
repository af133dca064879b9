"""Data-parallel training over processes started by ``torchrun`` (gloo on CPU, nccl on GPU).

Every rank draws the same task order and the same global batches (the sampler and batcher are
seeded alike), then trains on its share of each batch's rows; gradients are averaged by
``DistributedDataParallel``. Each rank's loss is weighted by its share of the batch, so the
averaged gradient is that of the whole batch, whatever the split. Rank 0 alone writes the run
directory, logs, evaluates and saves checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from kdnlu.errors import KdnluError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, rows: list[int], unit: int = 1) -> tuple[list[int], float]:
        """This rank's rows of a global batch (whole units of ``unit`` rows, e.g. a ranking
        group), and the weight of its mean loss: its share of the batch times the world size,
        so that the ranks' average is the whole batch's mean. A rank left without rows gets
        one row at weight 0, so that every rank runs the same backward."""
        if not self.distributed:
            return rows, 1.0
        units = np.asarray(rows).reshape(-1, unit)
        mine = units[self.rank :: self.size].reshape(-1).tolist()
        if not mine:
            return units[0].tolist(), 0.0
        return mine, len(mine) / len(rows) * self.size

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over the ranks."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t.item()) / self.size

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def join_world(device_choice: str) -> tuple[World, str]:
    """Join the process group when ``torchrun`` started this process; the device to use.

    Reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by torchrun); with CUDA each rank
    takes the GPU of its local rank and the nccl backend, else gloo.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device_choice
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_choice in ("auto", "cuda") and torch.cuda.is_available()
    if device_choice == "cuda" and not use_cuda:
        raise KdnluError("train.device is 'cuda' but torch sees no CUDA device")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return World(rank, size, local_rank), f"cuda:{local_rank}"
    return World(rank, size, local_rank), "cpu"


def leave_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
