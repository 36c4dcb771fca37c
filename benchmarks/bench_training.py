"""Held-out MAE of recipes under the same CPU time budget, and their training speed.

    python benchmarks/bench_training.py --data ../shared/data/rsna-sample --budget 1200 --out bench-out/real

Runs (each a `boneage train` subprocess with --init random and --threads 1, run side by
side; the budget counts each process's CPU time, so both get the same compute):
  seed         the report's recipe as written: 5 epochs (stops early if the budget ends)
  seed-budget  the report's recipe given as many epochs as the budget allows
  default      the project's recipe, its schedule fitted to the budget
Each run's test MAE is on the split's held-out 15%, never trained on or selected on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "seed": ["--recipe", "seed"],
    "seed-budget": ["--recipe", "seed", "--epochs", "1000"],
    "default": ["--recipe", "default"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=1200,
                        help="training CPU seconds per run, one thread each (default 1200)")
    parser.add_argument("--runs", default="seed-budget,default", help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each")
    args = parser.parse_args()
    names = args.runs.split(",")
    pending = list(names)
    running: dict[str, subprocess.Popen] = {}
    started = time.time()
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            out = args.out / name
            out.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "boneage.cli", "train", "--data", str(args.data), "--out", str(out),
                       "--init", "random", "--threads", "1", "--time-budget", str(args.budget), *RUNS[name]]
            print(f"[{time.time() - started:6.0f}s] start {name}: {' '.join(command[2:])}", flush=True)
            running[name] = subprocess.Popen(command, stdout=(out / "train.log").open("w"), stderr=subprocess.STDOUT)
        time.sleep(5)
        for name, process in list(running.items()):
            if process.poll() is not None:
                print(f"[{time.time() - started:6.0f}s] {name} exited {process.returncode}", flush=True)
                del running[name]
    rows = [summarise(name, args.out / name) for name in names]
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{'run':<12} {'epochs':>6} {'img/s':>6} {'val MAE':>8} {'test MAE':>9} {'RMSE':>7} {'R²':>6} {'n':>4}")
    for row in rows:
        print(f"{row['run']:<12} {row['epochs_run']:>6} {row['train_images_per_s']:>6.2f} {row['val_mae']:>8.2f} "
              f"{row['test_mae']:>9.2f} {row['test_rmse']:>7.2f} {row['test_r2']:>6.2f} {row['test_n']:>4}")
    return 0


def summarise(name: str, out: Path) -> dict:
    metadata = json.loads((out / "model.json").read_text())
    metrics = metadata["metrics"]
    train_images = len(metadata["split"]["train"]) * metrics["epochs_run"]
    # per CPU second: with one thread each, what one core trains, however busy the machine was
    return {"run": name, **metrics, "train_images_per_s": train_images / max(metrics["train_cpu_seconds"], 1e-9),
            "image_size": metadata["recipe"]["image_size"]}


if __name__ == "__main__":
    sys.exit(main())
