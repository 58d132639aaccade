"""Start-up benchmark: how long `mpdesign --help`, `--version`, `specs` and a command's `--help`
take, each as a fresh process, against `python -c "import typer"` on the same machine (the ratio
is what carries across machines; the seconds depend on the machine and its load).

    python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import typer' (reference)": [sys.executable, "-c", "import typer"],
    "mpdesign --version": [sys.executable, "-m", "designer.cli", "--version"],
    "mpdesign --help": [sys.executable, "-m", "designer.cli", "--help"],
    "mpdesign specs": [sys.executable, "-m", "designer.cli", "specs"],
    "mpdesign map --help": [sys.executable, "-m", "designer.cli", "map", "--help"],
    "python -c 'import designer.spec'": [sys.executable, "-c", "import designer.spec"],
}


def seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    reference = None
    print("| command | median s | vs import typer |")
    print("|---|---|---|")
    for name, command in COMMANDS.items():
        value = seconds(command, args.repeats)
        reference = reference or value
        print(f"| {name} | {value:.3f} | {value / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
