"""`dae sweep`: baseline vs DAE over a grid of decoder weakness and seeds, with paired statistics.

plan.py lists the runs (variant x seed, and each run's step budget under the chosen protocol),
runner.py trains / evaluates / probes them in parallel subprocesses and resumes a killed sweep,
report.py turns the run folders into one table (sweep.md + sweep.json) and one plot.
"""
