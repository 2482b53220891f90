"""`dae evaluate RUN [--metrics recon,fd,knn,lipschitz,codebook,diagnostics] [--features SPEC]`
-> RUN/eval.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dae.metrics import METRIC_GROUPS


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="measure a trained run; writes RUN/eval.json")
    parser.add_argument("run", type=Path, help="run folder (config.yaml + model.safetensors)")
    parser.add_argument(
        "--metrics",
        default=",".join(METRIC_GROUPS),
        help=f"comma-separated groups among {','.join(METRIC_GROUPS)} (default: all that apply)",
    )
    parser.add_argument(
        "--features",
        help="feature network: inception:PATH (real FID), classifier:mnist|cifar10 (dae's own, "
        "reported as FD-classifier), or pixels; default classifier:<dataset> or pixels",
    )
    parser.add_argument("-n", type=int, default=10000, help="held-out examples to measure")
    parser.add_argument("--knn-train", type=int, default=10000, help="k-NN reference examples")
    parser.add_argument(
        "--samples",
        help="also measure generated samples (.npz of uint8 (N, C, H, W) 'images') "
        "against the run's training split: sample_FD-..., sample_IS-...",
    )
    parser.add_argument(
        "--no-train-features",
        action="store_true",
        help="fail instead of training the classifier feature network when it is not cached",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the autoencoder runs: cpu (default), cuda, cuda:1, ...; metrics stay on the CPU",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.metrics.evaluate import EvalOptions, evaluate_run
    from dae.run import Run

    Run(args.run).require()
    opts = EvalOptions(
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        features=args.features,
        n=args.n,
        knn_train=args.knn_train,
        train_features=not args.no_train_features,
        samples=args.samples,
        device=args.device,
    )
    result = evaluate_run(args.run, opts)
    print(json.dumps(result["metrics"], indent=1))
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"wrote {Run(args.run).eval_path}")
    return 0
