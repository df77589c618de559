"""Process-group setup for multi-GPU / multi-node training launched by torchrun.

``python -m torch.distributed.run --nproc_per_node N [--nnodes M ...] -m mal train --config cfg.yaml`` sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` for every process; :func:`setup`
reads them and joins the group (NCCL on CUDA, gloo on CPU). A plain ``python -m mal train`` is a world of one
and starts no process group.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # True when setup() created the process group (and close() must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over all ranks (a world of one returns it unchanged)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def replicas_identical(self, model: torch.nn.Module, device: torch.device) -> bool:
        """Whether every rank holds bit-identical parameters (compares a per-tensor fingerprint).

        The fingerprint is the float64 sum and sum of squares of every parameter and buffer: any divergence
        between DDP replicas (a missed all-reduce, a rank-local update) changes it.
        """
        if not self.enabled:
            return True
        tensors = [*model.parameters(), *model.buffers()]
        fp = torch.stack([v for t in tensors for v in (t.double().sum(), t.double().square().sum())]).to(device)
        gathered = [torch.empty_like(fp) for _ in range(self.world_size)]
        dist.all_gather(gathered, fp)
        return all(torch.equal(gathered[0], g) for g in gathered[1:])

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def setup(device_type: str) -> DistContext:
    """Join the process group described by torchrun's environment variables, if there is one.

    Args:
        device_type: ``"cuda"`` selects NCCL and binds this process to GPU ``LOCAL_RANK``; ``"cpu"`` uses gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size <= 1:
        return DistContext()
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        owns = True
    return DistContext(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size(), owns_group=owns)
