"""Empirical coverage and mean width of the prediction interval on held-out data.

    .venv/bin/python benchmarks/bench_intervals.py --model runs/x/model.pt --data DIR [--confidence 0.9]

Reads the checkpoint's split, predicts the test split (never trained on, never used to
select or calibrate) as the Predictor does (recipe TTA), applies the interval calibration
stored in the checkpoint - or, for a checkpoint trained before intervals existed (or with
--recalibrate, one calibrated by an older method), calibrates it here on the checkpoint's
validation split (and training split residuals) exactly as training/train.py does - and prints
coverage and mean width overall, by sex, by age band of the true bone age and of the
predicted bone age (the Mondrian category), and by sex x band. Groups under 30 studies are
marked: their coverage is too noisy to judge (±5.5 points at n=30 for 90%).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.inference import predict_months  # noqa: E402
from training.intervals import IntervalModel, band_index, band_label, calibrate, coverage_table  # noqa: E402
from training.model import model_from_checkpoint  # noqa: E402
from training.recipes import Recipe  # noqa: E402
from training.train import TrainingData  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--confidence", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--recalibrate", action="store_true",
                        help="calibrate here with the current method even if the checkpoint stores a calibration")
    parser.add_argument("--fresh", default=None, metavar="DIR",
                        help="measure on every study of this other dataset (e.g. newly generated synthetic "
                             "radiographs, all unseen) instead of the checkpoint's test split")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model, metadata = model_from_checkpoint(args.model)
    recipe = Recipe.from_dict(metadata["recipe"])
    data = TrainingData.prepare(args.data, recipe, split=metadata["split"], progress=False, cache_dir=args.cache_dir)
    calibration = metadata.get("interval")
    source = "stored in the checkpoint"
    if "interval" not in metadata or args.recalibrate:
        images, male, ages = data.part("val")
        train_images, train_male, train_ages = data.part("train")
        calibration = calibrate(predict_months(model, images, male, tta=recipe.tta), ages,
                                train_predictions=predict_months(model, train_images, train_male, tta=recipe.tta),
                                train_targets=train_ages)
        source = ("calibrated here on the checkpoint's validation split, as training does now "
                  + ("(--recalibrate)" if args.recalibrate else "(checkpoint predates intervals)"))
    if calibration is None:
        print("no calibration: too few validation studies for the nominal level")
        return 1
    intervals = IntervalModel(calibration, args.confidence)
    if args.fresh:
        from training.rsna import load_records

        ids = [r.id for r in load_records(args.fresh)]
        data = TrainingData.prepare(args.fresh, recipe, split={"train": [], "val": [], "test": ids},
                                    progress=False, cache_dir=args.cache_dir)
        args.data = f"{args.data} (calibration); {args.fresh} (all studies, measured)"
    idx = data.indices["test"]
    images, male, ages = data.part("test")
    predictions = predict_months(model, images, male, tta=recipe.tta)
    low, high = intervals.bounds(predictions)
    sex = np.where(male > 0.5, "M", "F")
    true_band = np.array([band_label(int(b)) for b in band_index(ages)])
    predicted_band = np.array([band_label(int(b)) for b in band_index(predictions)])
    sex_band = np.array([f"{s} {b}" for s, b in zip(sex, true_band)])
    rows = coverage_table(predictions, ages, low, high, {
        "sex": sex, "band (true age)": true_band, "band (predicted age)": predicted_band, "sex x band": sex_band})

    print(f"model {args.model} ({metadata['recipe']['name']}, synthetic={metadata.get('synthetic')}); data {args.data}")
    print(f"calibration {source}: {calibration['method']}, n={calibration['n']} validation studies")
    level = calibration["levels"][f"{intervals.confidence:g}"]
    print(f"half-widths by {calibration.get('taxonomy', 'predicted age band')} (months): " + ", ".join(
        f"{b['band']} {b['half_width_months']:.1f} ({b.get('source', 'pooled' if b['pooled'] else 'validation')}) "
        f"[n={b['n']}{'+' + str(b['n_borrowed']) if b.get('n_borrowed') else ''}]" for b in level["bands"]))
    print(f"test split: n={len(idx)}, MAE {np.mean(np.abs(predictions - ages)):.2f} months, nominal {intervals.confidence:.0%}")
    print()
    print("| group | value | n | coverage | mean width (months) |")
    print("|---|---|---|---|---|")
    for row in rows:
        flag = " (n<30)" if row["n"] < 30 else ""
        print(f"| {row['group']} | {row['value']} | {row['n']} | {row['coverage']:.1%}{flag} | {row['mean_width_months']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
