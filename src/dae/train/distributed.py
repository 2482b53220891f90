"""Data-parallel training under `torchrun`: process group, devices, DDP wrapping, rank-0 duties.

`torchrun --nproc_per_node N -m dae.cli train CONFIG` starts N processes; each reads its slice
of every global batch (`EpochSampler(rank, world_size)`), gradients are averaged by
DistributedDataParallel (gloo on CPU, nccl on GPU), and only rank 0 logs and writes checkpoints.
A plain `python -m dae.cli train` is the world of one and touches none of this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group `torchrun` set up in the environment (a no-op without torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist_info()


def dist_info() -> DistInfo:
    """This process's rank and the world size (0 and 1 outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(device: str) -> torch.device:
    """`cuda` means this process's GPU (`cuda:LOCAL_RANK`) under torchrun; anything else as given."""
    info = dist_info()
    if device == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return torch.device(device)


def wrap_ddp(module: nn.Module) -> nn.Module:
    """DDP over `module`'s trainable parameters, or `module` itself in a world of one.

    Call it after the stage's freezing: DDP fixes at construction which parameters it syncs,
    so each stage gets a fresh wrapper (its construction also broadcasts rank 0's weights).
    """
    info = dist_info()
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def barrier() -> None:
    if dist_info().enabled:
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a list of one outside a process group)."""
    info = dist_info()
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def shutdown(wait: bool = True) -> None:
    """Leave the process group. With `wait`, only once every rank has finished communicating: a
    rank that tears down its gloo connections while a peer still uses one can take that peer
    down with it (SIGABRT), so all ranks meet at a barrier first. A rank that failed passes
    `wait=False`: its peers may never reach the barrier."""
    if dist_info().enabled:
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def device_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG states (CPU, and its GPU's): each rank draws its own dropout masks."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_device_rng_state(device: torch.device, state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
