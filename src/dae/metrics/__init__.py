"""Metrics of runs and samples. The names of `dae evaluate`'s groups live here, not in
dae.metrics.evaluate, so that the command line lists them without importing torch."""

METRIC_GROUPS = ("recon", "fd", "knn", "lipschitz", "codebook", "diagnostics")
