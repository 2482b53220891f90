"""Throughput, FLOPs and memory of every preset family in one run: a timing twin of training.

    PYTHONPATH=src python benchmarks/bench.py --steps 5 --threads 2 --out results.json
    PYTHONPATH=src python benchmarks/bench.py --quick --families toy,gpt --variants fp32,bf16

Training step (images/s) of each family (see bench_steps.py) in each variant: fp32, bf16 autocast,
channels_last, torch.compile (time-boxed). FLOPs per step are counted with `FlopCounterMode`
(matmuls, convolutions, attention; not the elementwise ops or the optimiser) and divided by the
step time; the peak they are compared with is measured in the same run: a large 1x1 convolution
in fp32 and in bf16. The DiT and GPT families also time sampling, and `eval` the feature extractors.
With several jobs, each (family, variant) runs in its own process, so that a peak RSS is its own
and a compile that hangs or crashes costs only its row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_steps import build, eval_rows, sampling_rows, sync, time_calls

FAMILIES = ("toy", "vqgan", "kl", "dit", "gpt", "eval")
VARIANTS = ("fp32", "bf16", "channels_last", "compile")
COMPILE_SECONDS = 240  # time box for torch.compile's first two steps (it compiles fwd and bwd)


# -- the machine's peak --------------------------------------------------------------------------
def conv_peak(dtype: torch.dtype, device: torch.device, batches: tuple[int, ...]) -> dict:
    """Best GFLOP/s of (batch, 512, 32, 32) x (512, 512, 1, 1) convolutions: big matmuls.

    Several batches, because the rate depends on the size: here fp32 ran at ~2x the rate with an
    8 MB input (batch 4, cache-resident) as with a 32-128 MB one (batch 16-64, memory-bound).
    """
    w = torch.randn(512, 512, 1, 1, device=device, dtype=dtype)
    rates = {}
    for batch in batches:
        x = torch.randn(batch, 512, 32, 32, device=device, dtype=dtype)
        F.conv2d(x, w)  # warm-up: oneDNN picks and caches its kernel
        best = min(time_calls(lambda x=x: F.conv2d(x, w), 5, device))  # the least disturbed
        rates[batch] = 2 * batch * 32 * 32 * 512 * 512 / best / 1e9
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "shape": "(batch, 512, 32, 32) x (512, 512, 1, 1)",
        "gflops_per_s_by_batch": rates,
        "gflops_per_s": max(rates.values()),
    }


def machine() -> dict:
    """CPU model, core count and the ISA flags that decide whether bf16 is native."""
    model, flags = platform.processor(), set()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    out = {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{f: f in flags for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")},
        "load_average": os.getloadavg(),
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


# -- one (family, variant) ------------------------------------------------------------------------
@contextmanager
def time_box(seconds: int):
    """Raise TimeoutError after `seconds` (SIGALRM; main thread only, else no limit)."""

    def expire(*_):
        raise TimeoutError(f"timed out after {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread
        yield
        return
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """CUDA: max allocated; CPU: the process's peak RSS (a high-water mark over its whole life)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_peak"  # KiB on Linux


def profile_top(step, n: int = 5) -> list[dict]:
    """The `n` ops with the most self CPU time in one step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:n]
    ]


def run_variant(family: str, variant: str, steps: int, device: torch.device, extras: bool) -> dict:
    """Time `steps` training steps of `family` in `variant`, count FLOPs; `extras`: profile, sampling."""
    from torch.utils.flop_counter import FlopCounterMode

    row: dict = {"family": family, "variant": variant, "status": "ok"}
    bench = build(family, "bf16" if variant == "bf16" else "fp32", device)
    row["batch_size"] = bench.batch_size
    if variant == "channels_last":
        if not bench.images:
            return {"train": [{**row, "status": "n/a (no 4-D activations)"}]}
        for net in bench.nets:
            net.to(memory_format=torch.channels_last)  # convs then propagate the layout
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        if variant == "compile":
            for net in bench.nets:
                net.compile()
            with time_box(COMPILE_SECONDS):
                row["warmup_s"] = sum(time_calls(bench.step, 2, device))
        else:
            row["warmup_s"] = sum(time_calls(bench.step, 1, device))
        times = time_calls(bench.step, steps, device)
    except Exception as err:  # a variant this machine cannot run is a result, not a crash
        if variant == "compile":
            from torch._dynamo import reset

            reset()
        return {"train": [{**row, "status": f"failed: {type(err).__name__}: {str(err)[:160]}"}]}
    row.update(
        step_s=statistics.median(times),
        step_s_all=times,
        images_per_s=bench.batch_size / statistics.median(times),
    )
    row["peak_mem_mb"], row["mem_kind"] = peak_memory_mb(device)
    if variant != "compile":  # the counter sees aten ops; compiled code runs fused kernels instead
        with FlopCounterMode(display=False) as counter:
            bench.step()
        row["flops_per_step"] = counter.get_total_flops()
    out = {"train": [row]}
    if extras:
        out["profile"] = {f"{family} {variant}": profile_top(bench.step)}
    if bench.prior is not None and variant in ("fp32", "bf16"):  # sampling in each dtype
        out["sampling"] = sampling_rows(bench, device, variant)
    return out


def run_jobs(
    families: list[str], variants: list[str], steps: int, device: torch.device, quick: bool
) -> dict:
    """All (family, variant) jobs in this process; extras (profile, sampling) with the first."""
    results: dict = {"train": [], "sampling": [], "eval": [], "profile": {}}
    for family in families:
        if family == "eval":
            results["eval"] += eval_rows(device, 250 if quick else 1000, max(1, min(steps, 3)))
            continue
        for i, variant in enumerate(variants):
            merge(results, run_variant(family, variant, steps, device, extras=i == 0))
    return results


def merge(results: dict, part: dict) -> None:
    """Add one job's rows to `results`."""
    for key in ("train", "sampling", "eval"):
        results[key] += part.get(key, [])
    results["profile"].update(part.get("profile", {}))


def run_isolated(args: argparse.Namespace, families: list[str], variants: list[str]) -> dict:
    """Each job in a fresh process (`--child`), so a peak RSS or a crash is that job's own.

    Compile jobs run last, so a slow compiler eats only its own rows; with `--budget`, jobs that
    would start after it are recorded as skipped and a running job is killed at the deadline.
    """
    results: dict = {"train": [], "sampling": [], "eval": [], "profile": {}}
    jobs = [(f, v) for f in families for v in (variants if f != "eval" else ["fp32"])]
    jobs.sort(key=lambda job: job[1] == "compile")
    extras = {f: next(v for f2, v in jobs if f2 == f) for f in families}  # the first job of each
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # no compile worker pool to orphan
    deadline = time.monotonic() + (args.budget or float("inf"))
    for family, variant in jobs:
        left = deadline - time.monotonic()
        if left < 10:
            status = f"skipped: over the --budget of {args.budget} s"
            results["train"].append({"family": family, "variant": variant, "status": status})
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            cmd = [sys.executable, __file__, "--child", "--families", family, "--variants"]
            cmd += [variant, "--steps", str(args.steps), "--threads", str(args.threads)]
            cmd += ["--out", tmp.name] + (["--quick"] if args.quick else [])
            cmd += [] if extras[family] == variant else ["--no-extras"]
            limit = min(left, COMPILE_SECONDS + 300 if variant == "compile" else 900)
            print(f"[{time.strftime('%H:%M:%S')}] {family} {variant}", file=sys.stderr, flush=True)
            try:
                proc = subprocess.run(cmd, env=env, timeout=limit, capture_output=True, text=True)
                failed = proc.returncode != 0 and (proc.stderr.strip().splitlines() or ["?"])[-1]
            except subprocess.TimeoutExpired:
                failed = f"killed after {limit:.0f} s"
            if failed:
                status = f"failed: {failed[:160]}"
                results["train"].append({"family": family, "variant": variant, "status": status})
                continue
            merge(results, json.loads(Path(tmp.name).read_text()))
    order = {name: i for i, name in enumerate((*FAMILIES, *VARIANTS))}
    results["train"].sort(key=lambda r: (order[r["family"]], order.get(r["variant"], 0)))
    return results


# -- the report -----------------------------------------------------------------------------------
def finish(results: dict, peak: dict) -> None:
    """Fill in GFLOP/s and the fraction of the measured peak of the variant's dtype."""
    eager_flops = {
        r["family"]: r["flops_per_step"] for r in results["train"] if "flops_per_step" in r
    }
    for row in results["train"]:
        if "step_s" not in row or row["family"] not in eager_flops:
            continue
        # compile does the same arithmetic as eager fp32: use the family's eager count
        row.setdefault("flops_per_step", eager_flops[row["family"]])
        row["gflops_per_s"] = row["flops_per_step"] / row["step_s"] / 1e9
        ref = peak["bf16" if row["variant"] == "bf16" else "fp32"]["gflops_per_s"]
        row["peak_fraction"] = row["gflops_per_s"] / ref
    for row in results["sampling"] + results["eval"]:
        # fp64 (k-NN) is compared with the fp32 peak: an upper bound it cannot reach
        row["gflops_per_s"] = row["flops"] / row["seconds"] / 1e9
        ref = peak["bf16" if row["precision"] == "bf16" else "fp32"]["gflops_per_s"]
        row["peak_fraction"] = row["gflops_per_s"] / ref


def markdown(results: dict) -> str:
    """The results as Markdown tables."""
    lines = [
        f"peak (1x1 conv): fp32 {results['peak']['fp32']['gflops_per_s']:.1f} GFLOP/s, "
        f"bf16 {results['peak']['bf16']['gflops_per_s']:.1f} GFLOP/s",
        "",
        "| family | variant | batch | images/s | step s | GFLOP/step | GFLOP/s | % of peak | "
        "peak mem MB | status |",
        "|" + "---|" * 10,
    ]
    for r in results["train"]:

        def num(key, fmt, scale=1.0, r=r):
            return format(r[key] * scale, fmt) if key in r else "-"

        lines.append(
            f"| {r['family']} | {r['variant']} | {r.get('batch_size', '-')} | "
            f"{num('images_per_s', '.1f')} | {num('step_s', '.3f')} | "
            f"{num('flops_per_step', '.2f', 1e-9)} | {num('gflops_per_s', '.1f')} | "
            f"{num('peak_fraction', '.1f', 100)} | {num('peak_mem_mb', '.0f')} | {r['status']} |"
        )
    if results["sampling"]:
        lines += [
            "",
            "| prior | sampler | precision | batch | seconds | images/s | GFLOP | GFLOP/s | "
            "% of peak |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['family']} | {r['sampler']} | {r['precision']} | {r['batch']} | "
            f"{r['seconds']:.2f} | {r['images_per_s']:.2f} | {r['flops'] / 1e9:.2f} | "
            f"{r['gflops_per_s']:.1f} | {100 * r['peak_fraction']:.1f} |"
            for r in results["sampling"]
        ]
    if results["eval"]:
        lines += [
            "",
            "| extractor | precision | images | seconds | images/s | MFLOP/image | GFLOP/s | "
            "% of peak | weights |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['extractor']} | {r['precision']} | {r['images']} | {r['seconds']:.3f} | "
            f"{r['images_per_s']:.0f} | {r['flops_per_image'] / 1e6:.1f} | "
            f"{r['gflops_per_s']:.1f} | {100 * r['peak_fraction']:.1f} | {r['weights']} |"
            for r in results["eval"]
        ]
    for job, top in results["profile"].items():
        ops = ", ".join(f"{t['op']} {100 * t['share']:.0f}%" for t in top)
        lines.append(f"\nprofile {job} step (self CPU time): {ops}")
    return "\n".join(lines)


def bench(
    families: list[str],
    variants: list[str],
    steps: int = 5,
    threads: int | None = None,
    quick: bool = False,
    isolate: bool = False,
    args: argparse.Namespace | None = None,
) -> dict:
    """The whole benchmark: machine, measured peak, then every (family, variant) job."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak_batches = (4,) if quick else (4, 16, 64)
    results = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "quick": quick,
        "command": " ".join(sys.argv),
        "peak": {
            name: conv_peak(dtype, device, peak_batches)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        },
    }
    started = time.perf_counter()
    if isolate:
        results.update(run_isolated(args, families, variants))
    else:
        results.update(run_jobs(families, variants, steps, device, quick))
    results["wall_s"] = time.perf_counter() - started
    finish(results, results["peak"])
    sync(device)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma list of {FAMILIES}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {VARIANTS}")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per job (median reported)"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default="results.json", help="JSON results")
    parser.add_argument("--quick", action="store_true", help="small peak conv and eval set")
    parser.add_argument("--budget", type=float, default=0, help="seconds for all jobs; 0: none")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-extras", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    families, variants = args.families.split(","), args.variants.split(",")
    for name, given, known in (
        ("--families", families, FAMILIES),
        ("--variants", variants, VARIANTS),
    ):
        if unknown := sorted(set(given) - set(known)):
            parser.error(f"{name}: unknown {unknown}; known {list(known)}")
    if args.child:  # one job of run_isolated: rows only
        torch.set_num_threads(args.threads)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if families == ["eval"]:
            part = {
                "eval": eval_rows(device, 250 if args.quick else 1000, max(1, min(args.steps, 3)))
            }
        else:
            part = run_variant(families[0], variants[0], args.steps, device, not args.no_extras)
        Path(args.out).write_text(json.dumps(part))
        return
    jobs = sum(len(variants) if f != "eval" else 1 for f in families)
    results = bench(families, variants, args.steps, args.threads, args.quick, jobs > 1, args)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(
        f"\n{results['machine']['cpu']}, {results['threads']} threads, wall {results['wall_s']:.0f} s;"
        f" JSON: {args.out}"
    )


if __name__ == "__main__":
    main()
