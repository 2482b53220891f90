"""Time evaluating 10,000 CIFAR-10 test images: decode/load, features, Fréchet distance (+ KID, P/R).

Usage: DAE_DATA=../shared/data python benchmarks/eval_cifar10.py [--threads 1] [--inception-images 16]
The classifier's cost does not depend on its weights, so an untrained copy is timed if none is cached.
The Inception-v3 cost is extrapolated from a few images with random weights (no real weights here).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from dae.data.images import load_images
from dae.metrics.classifier import PRESETS, build_classifier, classifier_path, load_classifier
from dae.metrics.features import FeatureExtractor, _names
from dae.metrics.fid import frechet_distance, kernel_distance, precision_recall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inception-images", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict[str, float | str] = {
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
    }

    t = time.time()
    test = load_images("cifar10", "test")
    out["load_10k_s"] = round(time.time() - t, 2)

    cfg = PRESETS["cifar10"]
    path = classifier_path(cfg)
    net = load_classifier(path)[0] if path.is_file() else build_classifier(cfg).eval()
    ext = FeatureExtractor("classifier:cifar10", net, "bench", _names("classifier", False), 3, 32)
    t = time.time()
    real = ext.extract(test.images)
    out["classifier_features_10k_s"] = round(time.time() - t, 2)
    fake = ext.extract(test.images.flip(-1))
    t = time.time()
    frechet_distance(real["pool"], fake["pool"])
    out["fd_pool_s"] = round(time.time() - t, 2)
    t = time.time()
    frechet_distance(real["spatial"], fake["spatial"])
    out["fd_spatial_s"] = round(time.time() - t, 2)
    t = time.time()
    kernel_distance(real["pool"], fake["pool"], subsets=100)
    out["kid_100_subsets_s"] = round(time.time() - t, 2)
    t = time.time()
    precision_recall(real["pool"], fake["pool"])
    out["precision_recall_s"] = round(time.time() - t, 2)

    from dae.metrics.inception import FIDInceptionV3

    inc = FIDInceptionV3().eval()
    x = test.images[: args.inception_images]
    with torch.no_grad():
        inc.features(torch.zeros(2, 3, 32, 32))  # warm-up
        t = time.time()
        inc.features(x.float() / 127.5 - 1)
    per_image = (time.time() - t) / len(x)
    out["inception_per_image_s"] = round(per_image, 4)
    out["inception_features_10k_s_extrapolated"] = round(per_image * 10000, 0)
    real_i = torch.randn(10000, 2048, dtype=torch.float64)
    t = time.time()
    frechet_distance(real_i, real_i + 0.1)
    out["fd_2048d_10k_s"] = round(time.time() - t, 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
