"""One sweep job: several `dae` commands in one process (imports are paid once per run).

    python -m dae.sweep.job --threads 1 train CFG --out RUN ... ::: evaluate RUN --metrics recon

Commands are separated by `:::`; the first that fails stops the job with its exit code.
"""

from __future__ import annotations

import sys

SEPARATOR = ":::"


def split_commands(argv: list[str]) -> list[list[str]]:
    """`[a, b, ":::", c]` -> `[[a, b], [c]]` (empty commands dropped)."""
    commands: list[list[str]] = [[]]
    for arg in argv:
        if arg == SEPARATOR:
            commands.append([])
        else:
            commands[-1].append(arg)
    return [c for c in commands if c]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--threads"]:
        import torch

        # One thread per job: parallel jobs on a few cores beat threads fighting over them.
        torch.set_num_threads(int(argv[1]))
        argv = argv[2:]
    from dae.cli import main as dae_main

    for command in split_commands(argv):
        print(f"$ dae {' '.join(command)}", flush=True)
        code = dae_main(command)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
