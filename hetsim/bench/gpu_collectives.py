"""All-reduce timing across the GPUs of one machine (NCCL through torch.distributed).

One process per GPU (``torch.multiprocessing.spawn``); rank 0 reports, per message size, the
median over repetitions of the slowest rank's time (each repetition starts after a barrier).
Rows use kind ``collective``, dtype ``bf16``, ``bytes`` = message size and ``flops`` = 0;
their ``achieved_bytes_per_s`` is NCCL-tests' bus bandwidth, ``2 (n-1) / n * size / time``.

Not yet run on hardware: the machines lent to this project have one GPU each.
"""

from __future__ import annotations

import socket
import statistics
from typing import Any

QUICK_SIZES = tuple(2**p for p in (12, 16, 20, 24, 28))
FULL_SIZES = tuple(2**p for p in range(10, 31, 2))


def all_reduce_rows(world_size: int, quick: bool) -> list[dict[str, Any]]:
    """Rows for all-reduce of each message size over ``world_size`` GPUs."""
    import torch.multiprocessing as mp

    sizes = QUICK_SIZES if quick else FULL_SIZES
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(world_size, port, sizes, queue), nprocs=world_size, join=True)
    results: dict[int, float] = queue.get()
    return [_row(world_size, size, seconds) for size, seconds in results.items()]


def _worker(rank: int, world_size: int, port: int, sizes: tuple[int, ...], queue: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    results = {}
    for size in sizes:
        x = torch.ones(size // 2, dtype=torch.bfloat16, device="cuda")
        for _ in range(5):
            dist.all_reduce(x)
        samples = []
        for _ in range(20):
            dist.barrier()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dist.all_reduce(x)
            end.record()
            end.synchronize()
            elapsed = torch.tensor([start.elapsed_time(end) * 1e-3], device="cuda")
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
            samples.append(float(elapsed))
        results[size] = statistics.median(samples)
    if rank == 0:
        queue.put(results)
    dist.destroy_process_group()


def _row(world_size: int, size: int, seconds: float) -> dict[str, Any]:
    bus = 2 * (world_size - 1) / world_size * size / seconds
    return {"problem_id": f"all_reduce/bf16/gpus{world_size}-bytes{size}", "kind": "collective", "op": "all_reduce",
            "impl": "nccl", "variant": f"{world_size} GPUs", "dtype": "bf16",
            "shape": f"gpus={world_size} bytes={size}",
            "flops": 0.0, "bytes": float(size), "seconds": seconds, "seconds_min": float("nan"), "reps": 20,
            "achieved_flops_per_s": 0.0, "achieved_bytes_per_s": bus, "max_rel_diff": None, "is_held_out": False,
            "source": "torch.distributed NCCL all_reduce", "error": ""}
