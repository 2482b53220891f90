"""Peak memory and loader-only throughput of `data.source: memory` vs `stream` on an image folder.

    python benchmarks/make_synthetic_folder.py /tmp/synth --n 20000      # once, not committed
    python benchmarks/stream_loader.py rss /tmp/synth --steps 20
    python benchmarks/stream_loader.py throughput /tmp/synth --workers 0 2 4

`rss` runs each source in a fresh process (the memory path on the whole folder and on its first
class folder, the stream path likewise), pulls `--steps` training batches through the path
`dae train` uses, and prints the RSS after the first and the last step, the process's peak RSS
and its workers' largest. `throughput` times
the streaming loader alone (decode + resize/crop + flip + uint8 -> float) for each worker count,
in one process, interleaved over `--rounds`, and prints images/s and the ratio to 0 workers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from dae.data.images import ImageDataConfig, float_batch, load_from_config
from dae.data.sampler import EpochSampler
from dae.data.stream import StreamLoader
from dae.data.transforms import to_float


def peak_rss_mib() -> dict[str, float]:
    """Peak RSS of this process and of its largest finished child (MiB; Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": round(own), "worker_peak_rss_mib": round(children)}


def current_rss_mib() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def loader(cfg: ImageDataConfig, batch: int, steps: int):
    """`batch(step)` of the path `dae train` takes for `cfg` (float [-1, 1] images)."""
    data = load_from_config(cfg)
    sampler = EpochSampler(len(data), batch, seed=0)
    if cfg.source == "memory":
        return len(data), lambda step: float_batch(data, sampler.indices(step), True, seed=step)
    stream = StreamLoader(
        data, sampler, hflip=True, seed=0, steps=steps, workers=cfg.workers,
        prefetch=cfg.prefetch, pin_memory=False,
    )  # fmt: skip
    return len(data), lambda step: to_float(stream.batch(step))


def one_rss(root: str, source: str, workers: int, batch: int, steps: int) -> dict:
    cfg = ImageDataConfig(
        name="folder", root=root, image_size=256, source=source, workers=workers, cache=False
    )
    started = time.perf_counter()
    n, get = loader(cfg, batch, steps)
    ready = time.perf_counter() - started
    rss = []
    for step in range(steps):
        get(step)
        rss.append(current_rss_mib())
    del get  # the stream's workers exit here, so their peak is counted
    return {"source": source, "images": n, "workers": workers, "start_s": round(ready, 1),
            "rss_after_first_step_mib": rss[0], "rss_after_last_step_mib": rss[-1],
            **peak_rss_mib()}  # fmt: skip


def run_rss(args: argparse.Namespace) -> None:
    first_class = sorted(p for p in args.root.iterdir() if p.is_dir())[0]
    for source in args.sources:
        for root in (first_class, args.root):
            workers = args.rss_workers if source == "stream" else 0
            cmd = [sys.executable, __file__, "_one", str(root), source, str(workers),
                   str(args.batch), str(args.steps)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


def run_throughput(args: argparse.Namespace) -> None:
    results: dict[int, list[float]] = {w: [] for w in args.workers}
    for _ in range(args.rounds):
        for workers in args.workers:
            cfg = ImageDataConfig(
                name="folder", root=str(args.root), image_size=256, source="stream",
                workers=workers,
            )  # fmt: skip
            _, get = loader(cfg, args.batch, args.steps + 2)
            get(0), get(1)  # workers started and their queues filled
            started = time.perf_counter()
            for step in range(2, args.steps + 2):
                get(step)
            results[workers].append(args.batch * args.steps / (time.perf_counter() - started))
            del get
    base = max(results[args.workers[0]])
    for workers, rates in results.items():
        best = max(rates)
        print(json.dumps({"workers": workers, "images_per_s": round(best, 1),
                          "vs_first": round(best / base, 2), "all": [round(r) for r in rates]}))  # fmt: skip


def main() -> None:
    if sys.argv[1] == "_one":  # a child of `rss`
        _, _, root, source, workers, batch, steps = sys.argv
        torch.set_num_threads(1)
        print(json.dumps(one_rss(root, source, int(workers), int(batch), int(steps))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["rss", "throughput"])
    parser.add_argument(
        "root", type=Path, help="image folder (benchmarks/make_synthetic_folder.py)"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--rss-workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sources", nargs="+", default=["stream", "memory"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    run_rss(args) if args.mode == "rss" else run_throughput(args)


if __name__ == "__main__":
    main()
