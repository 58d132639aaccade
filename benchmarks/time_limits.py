"""Does `--time-limit` bound the whole command, and does the verdict stay the same, on an idle
machine and beside busy processes?

Runs each case as a user would (a fresh `mpdesign` process, start-up included), `--repeats`
times, alone and beside `--busy` CPU-bound processes (`python -c "while True: pass"`), and
prints one markdown table: the wall time against the limit, the exit codes, and the answer's
key figure (a design's score, a mapping's traffic, M_P), so a verdict that moves with the
machine's load shows as two values in one row.

    python benchmarks/time_limits.py                       # every case, alone and beside 2 busy processes
    python benchmarks/time_limits.py --cases infeasible map-cells --busy 2 --repeats 3

The cases' graphs are generated or written here (a hand-written torchvision-style ResNet-18
from tests/models, captured as one training step); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPDESIGN = [sys.executable, "-m", "designer.cli"]


def cases(work: Path) -> dict[str, tuple[list[str], float | None, str]]:
    """name: (arguments, the time limit they set or None, the JSON key holding the answer)."""
    from designer.mapping.sources.generators import cell_network
    cells = work / "cells.json"
    cells.write_text(json.dumps(cell_network(cells=10).to_dict()))
    resnet = "tests/models/cifar.py:tv_resnet18"
    return {
        "infeasible": (["design", "--macs", "1e5", "--params", "1e6", "--time-limit", "5"], 5, "exit"),
        "design-r50": (["design", "--macs", "4.04e9", "--params", "25.4e6", "--effectiveness", "0.3",
                        "--time-limit", "20", "--json"], 20, "score"),
        "map-cells": (["map", str(cells), "--scratchpad", "M_R", "--time-limit", "6", "--json"], 6, "offchip_bytes"),
        "map-cells-M_H-30": (["map", str(cells), "--scratchpad", "M_H", "--time-limit", "30", "--json"], 30, "M_P"),
        "map-cells-M_H-120": (["map", str(cells), "--scratchpad", "M_H", "--time-limit", "120", "--json"], 120, "M_P"),
        "map-resnet18-train": (["map", "--model", resnet, "--input-shape", "1,3,224,224", "--training",
                                "--scratchpad", "M_H", "--time-limit", "20", "--json"], 20, "offchip_bytes"),
        "map-resnet18-train-ilp": (["map", "--model", resnet, "--input-shape", "1,3,224,224", "--training",
                                    "--scratchpad", "M_H", "--strategy", "ilp", "--time-limit", "20", "--json"], 20,
                                   "offchip_bytes"),
        # issue 33: training graphs of hand-written torchvision models, whose capture takes a large
        # share of a 10-s limit; and the tiled paths, whose export and candidates come first
        **{f"map-{name}-train-{limit}": (["map", "--model", f"tests/models/torchvision_like.py:{name}",
                                          "--input-shape", "1,3,224,224", "--training", "--time-limit", str(limit),
                                          "--json"], limit, "offchip_bytes")
           for name in ("mobilenet_v2", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t") for limit in (10, 20)},
        "map-resnet18-tiled-10": (["map", "--model", resnet, "--input-shape", "1,3,224,224", "--tiling", "auto",
                                   "--scratchpad", "M_R", "--time-limit", "10", "--json"], 10, "offchip_bytes"),
        "map-resnet18-curve-20": (["map", "--model", resnet, "--input-shape", "1,3,224,224", "--curve", "min:M_P",
                                   "--points", "6", "--time-limit", "20"], 20, "exit"),
    }


def answer(stdout: str, key: str, code: int):
    if key == "exit":
        return code
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    return data.get("budgets", {}).get(key) if key == "M_P" else data.get(key)


def run(arguments: list[str], key: str) -> tuple[float, int, object]:
    start = time.perf_counter()
    done = subprocess.run(MPDESIGN + arguments, capture_output=True, text=True, cwd=ROOT,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - start, done.returncode, answer(done.stdout, key, done.returncode)


def measure(names: list[str], busy: int, repeats: int, work: Path) -> list[dict]:
    table = cases(work)
    rows = []
    for load in (0, busy) if busy else (0,):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        try:
            for name in names:
                arguments, limit, key = table[name]
                runs = [run(arguments, key) for _ in range(repeats)]
                rows.append({"case": name, "busy": load, "limit": limit, "walls": [w for w, _, _ in runs],
                             "codes": sorted({c for _, c, _ in runs}), "answers": [a for _, _, a in runs]})
                print(f"{name} beside {load} busy: {rows[-1]}", file=sys.stderr)
        finally:
            for hog in hogs:
                hog.kill()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=None, help="Which cases (default: all).")
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the second pass (0: none).")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        names = args.cases or list(cases(Path(folder)))
        rows = measure(names, args.busy, args.repeats, Path(folder))
    print("| case | busy processes | --time-limit | wall s (median, max) | max / limit | within 1.1 x limit + 5 s "
          "| exit codes | answers |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "" if r["limit"] is None else f"{max(r['walls']) / r['limit']:.2f}"
        within = "" if r["limit"] is None else ("yes" if max(r["walls"]) <= 1.1 * r["limit"] + 5 else "NO")
        print(f"| {r['case']} | {r['busy']} | {r['limit']} | {statistics.median(r['walls']):.1f}, "
              f"{max(r['walls']):.1f} | {ratio} | {within} | {r['codes']} | {r['answers']} |")


if __name__ == "__main__":
    main()
