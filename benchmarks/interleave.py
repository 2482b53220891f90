"""Training-step variants of one family side by side in one process, stepped round-robin.

    PYTHONPATH=src python benchmarks/interleave.py vqgan --variants fp32,bf16,channels_last \
        --rounds 4 --threads 1

`bench.py` runs each (family, variant) in its own process, so its rows are minutes apart and, on
a shared machine, under different loads. Here every variant gets its own model and optimiser
(`bench_steps.build`, the project's own training step), one warm-up step, and then one step per
round in turn, the order reversed every other round: a ratio between two variants is then
measured under the same load. `channels_last_bf16` is channels_last under bf16 autocast.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from bench_steps import TRAIN_FAMILIES, build

VARIANTS = ("fp32", "bf16", "channels_last", "channels_last_bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=sorted(TRAIN_FAMILIES))
    parser.add_argument("--variants", default="fp32,bf16", help=f"comma list of {VARIANTS}")
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"--variants: unknown {unknown}; known {list(VARIANTS)}")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    steps = {}
    for variant in variants:
        bench = build(args.family, "bf16" if variant.endswith("bf16") else "fp32", device)
        if variant.startswith("channels_last"):
            if not bench.images:
                parser.error(f"{args.family} has no 4-D activations: channels_last means nothing")
            for net in bench.nets:
                net.to(memory_format=torch.channels_last)
        bench.step()  # warm-up
        steps[variant] = bench.step
    print(f"{args.family}, {args.threads} threads, load average {os.getloadavg()[0]:.1f} at start")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant in variants if r % 2 == 0 else variants[::-1]:
            start = time.perf_counter()
            steps[variant]()
            times[variant].append(time.perf_counter() - start)
    base = statistics.median(times[variants[0]])
    print(f"| variant | median s/step | fastest s/step | speed vs {variants[0]} |")
    print("|---|---:|---:|---:|")
    for variant, ts in times.items():
        med = statistics.median(ts)
        print(f"| {variant} | {med:.3f} | {min(ts):.3f} | {base / med:.2f}x |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
