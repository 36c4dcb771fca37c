"""Empirical coverage and mean width of the prediction interval on held-out data.

    .venv/bin/python benchmarks/bench_intervals.py --model runs/x/model.pt --data DIR [--confidence 0.9]
    .venv/bin/python benchmarks/bench_intervals.py --model M --data D --fresh TEST_DIR \
        --calibrate-on CAL_DIR [--draws 5]

Reads the checkpoint's split, predicts the test split (never trained on, never used to
select or calibrate) as the Predictor does (recipe TTA), applies the interval calibration
stored in the checkpoint - or, for a checkpoint trained before intervals existed (or with
--recalibrate, one calibrated by an older method), calibrates it here on the checkpoint's
validation split (and training split residuals) exactly as training/train.py does - and prints
coverage and mean width overall, by sex, by age band of the true bone age and of the
predicted bone age (the Mondrian category), and by sex x band. Groups under 30 studies are
marked: their coverage is too noisy to judge (±5.5 points at n=30 for 90%).

--calibrate-on DIR calibrates instead on every study of another dataset (a larger fresh
synthetic set: a 15% validation split of a synthetic run has too few children at the ends of
the age range for a per-band conformal quantile) with the same function as training
(training.intervals.calibrate; the checkpoint's training split residuals still fill a band
with fewer than 30 calibration studies). It must be distinct from the measured set.
--draws K splits DIR's studies into K disjoint random calibration sets (seeded) and calibrates
on each: the table is then draw 1's, followed by the mean, SD and range over the K draws and
the share of draws that meet the issue's targets (±3 points overall, ±6 in every band with >= 30
measured studies).

--redraws K (real data, where there is no more of it): after the table of the checkpoint's own
split, K times a random calibration set of the validation split's size is drawn from validation +
test (both held out from training) and the other studies are measured; prints each group's mean
coverage, its 5-95% range and the share of re-draws that meet the targets. It shows how much of a
single split's miss is the noise of 136 test studies.
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

MIN_GROUP = 30  # groups below this are reported, not judged
TARGET_OVERALL, TARGET_BAND = 0.03, 0.06  # issue 11: ±3 points overall, ±6 in every band with >= 30 studies


def all_studies(data_dir, recipe, cache_dir) -> TrainingData:
    """Every study of a dataset as one "test" part (none of it trained on)."""
    from training.rsna import load_records

    ids = [r.id for r in load_records(data_dir)]
    return TrainingData.prepare(data_dir, recipe, split={"train": [], "val": [], "test": ids},
                                progress=False, cache_dir=cache_dir)


def disjoint_draws(n: int, k: int, seed: int) -> list[np.ndarray]:
    """k disjoint random index sets of equal size (n // k) out of range(n)."""
    order = np.random.default_rng(seed).permutation(n)
    size = n // k
    return [np.sort(order[i * size:(i + 1) * size]) for i in range(k)]


def redraw_splits(n_pool: int, n_calibration: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k random (calibration, measured) partitions of range(n_pool), the calibration part of n_calibration."""
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(k):
        order = rng.permutation(n_pool)
        splits.append((np.sort(order[:n_calibration]), np.sort(order[n_calibration:])))
    return splits


def meets_targets(rows: list[dict], confidence: float) -> bool:
    """Overall within ±3 points of nominal and every age band (true or predicted) with at least
    MIN_GROUP studies within ±6."""
    for row in rows:
        if row["group"] == "all" and abs(row["coverage"] - confidence) > TARGET_OVERALL + 1e-12:
            return False
        if row["group"].startswith("band") and row["n"] >= MIN_GROUP and abs(row["coverage"] - confidence) > TARGET_BAND + 1e-12:
            return False
    return True


def describe(calibration: dict, intervals: IntervalModel) -> str:
    level = calibration["levels"][f"{intervals.confidence:g}"]
    return ", ".join(
        f"{b['band']} {b['half_width_months']:.1f} ({b.get('source', 'pooled' if b['pooled'] else 'validation')}) "
        f"[n={b['n']}{'+' + str(b['n_borrowed']) if b.get('n_borrowed') else ''}]" for b in level["bands"])


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
    parser.add_argument("--calibrate-on", default=None, metavar="DIR",
                        help="calibrate on every study of this dataset (distinct from the measured one) instead of "
                             "the checkpoint's validation split, with training's calibrate()")
    parser.add_argument("--draws", type=int, default=1,
                        help="with --calibrate-on: split its studies into this many disjoint calibration sets")
    parser.add_argument("--draw-seed", type=int, default=0)
    parser.add_argument("--redraws", type=int, default=0,
                        help="also re-draw the calibration set this many times from validation + test, measuring the rest")
    args = parser.parse_args(argv)
    if args.redraws and (args.fresh or args.calibrate_on):
        parser.error("--redraws re-draws the checkpoint's own validation + test split; not with --fresh/--calibrate-on")

    import torch

    torch.set_num_threads(args.threads)
    model, metadata = model_from_checkpoint(args.model)
    recipe = Recipe.from_dict(metadata["recipe"])
    data = TrainingData.prepare(args.data, recipe, split=metadata["split"], progress=False, cache_dir=args.cache_dir)

    predicted = {}  # (dataset, part) -> (predictions, ages, male): each part is predicted once

    def predict(part_data, part):
        key = (part_data, part)  # the dataset itself: kept alive, so never confused with another
        if key not in predicted:
            images, male, ages = part_data.part(part)
            predicted[key] = (predict_months(model, images, male, tta=recipe.tta), ages, male)
        return predicted[key]

    calibrations = [metadata.get("interval")]
    source = "stored in the checkpoint"
    if args.calibrate_on:
        measured = Path(args.fresh or args.data).resolve()
        if Path(args.calibrate_on).resolve() == measured:
            parser.error("--calibrate-on must be a dataset distinct from the measured one")
        calibration_data = all_studies(args.calibrate_on, recipe, args.cache_dir)
        cal_predictions, cal_ages, cal_male = predict(calibration_data, "test")
        train_predictions, train_ages, train_male = predict(data, "train")
        draws = disjoint_draws(len(cal_ages), args.draws, args.draw_seed)
        calibrations = [calibrate(cal_predictions[d], cal_ages[d], male=cal_male[d], train_predictions=train_predictions,
                                  train_targets=train_ages, train_male=train_male) for d in draws]
        source = (f"calibrated here on {args.calibrate_on} ({len(cal_ages)} studies, MAE "
                  f"{np.mean(np.abs(cal_predictions - cal_ages)):.2f}), "
                  + (f"{args.draws} disjoint draws of {len(draws[0])} (seed {args.draw_seed}); the table is draw 1's"
                     if args.draws > 1 else "all of it"))
    elif "interval" not in metadata or args.recalibrate:
        predictions, ages, male = predict(data, "val")
        train_predictions, train_ages, train_male = predict(data, "train")
        calibrations = [calibrate(predictions, ages, male=male, train_predictions=train_predictions,
                                  train_targets=train_ages, train_male=train_male)]
        source = ("calibrated here on the checkpoint's validation split, as training does now "
                  + ("(--recalibrate)" if args.recalibrate else "(checkpoint predates intervals)"))
    if any(c is None for c in calibrations):
        print("no calibration: too few calibration studies for the nominal level")
        return 1
    if args.fresh:
        data = all_studies(args.fresh, recipe, args.cache_dir)
        args.data = f"{args.data} (model); {args.fresh} (all studies, measured)"
    idx = data.indices["test"]
    predictions, ages, male = predict(data, "test")
    groups = groups_of(predictions, ages, male)
    runs = []
    for calibration in calibrations:
        intervals = IntervalModel(calibration, args.confidence)
        low, high = intervals.bounds(predictions, male)
        runs.append((calibration, intervals, coverage_table(predictions, ages, low, high, groups)))
    calibration, intervals, rows = runs[0]

    print(f"model {args.model} ({metadata['recipe']['name']}, synthetic={metadata.get('synthetic')}); data {args.data}")
    print(f"calibration {source}: {calibration['method']}, n={calibration['n']} calibration studies")
    print(f"half-widths by {calibration.get('taxonomy', 'predicted age band')} (months): " + describe(calibration, intervals))
    print(f"measured: n={len(idx)}, MAE {np.mean(np.abs(predictions - ages)):.2f} months, nominal {intervals.confidence:.0%}")
    print()
    print("| group | value | n | coverage | mean width (months) |")
    print("|---|---|---|---|---|")
    for row in rows:
        flag = f" (n<{MIN_GROUP})" if row["n"] < MIN_GROUP else ""
        print(f"| {row['group']} | {row['value']} | {row['n']} | {row['coverage']:.1%}{flag} | {row['mean_width_months']:.1f} |")
    if len(runs) > 1:
        print()
        for i, (c, m, _) in enumerate(runs, 1):
            print(f"draw {i}: half-widths " + describe(c, m))
        passed = sum(meets_targets(r, intervals.confidence) for _, _, r in runs)
        print(f"\nover {len(runs)} disjoint calibration draws ({passed} of {len(runs)} meet the targets); "
              "SE(test) = the binomial SE of a group's coverage at nominal from the measured set alone")
        print()
        print("| group | value | n | coverage mean | SD | min - max | SE(test) | mean width (months) |")
        print("|---|---|---|---|---|---|---|---|")
        for j, row in enumerate(rows):
            cov = np.array([r[j]["coverage"] for _, _, r in runs])
            width = np.mean([r[j]["mean_width_months"] for _, _, r in runs])
            se = np.sqrt(intervals.confidence * (1 - intervals.confidence) / row["n"])
            flag = f" (n<{MIN_GROUP})" if row["n"] < MIN_GROUP else ""
            print(f"| {row['group']} | {row['value']} | {row['n']} | {cov.mean():.1%}{flag} | {cov.std(ddof=1):.1%} | "
                  f"{cov.min():.1%} - {cov.max():.1%} | {se:.1%} | {width:.1f} |")
    if args.redraws:
        print_redraws(data, predict, args.redraws, args.draw_seed, intervals.confidence)
    return 0


def groups_of(predictions: np.ndarray, ages: np.ndarray, male: np.ndarray) -> dict[str, np.ndarray]:
    sex = np.where(male > 0.5, "M", "F")
    true_band = np.array([band_label(int(b)) for b in band_index(ages)])
    predicted_band = np.array([band_label(int(b)) for b in band_index(predictions)])
    sex_band = np.array([f"{s} {b}" for s, b in zip(sex, true_band)])
    return {"sex": sex, "band (true age)": true_band, "band (predicted age)": predicted_band, "sex x band": sex_band}


def print_redraws(data, predict, k: int, seed: int, confidence: float) -> None:
    val_predictions, val_ages, val_male = predict(data, "val")
    test_predictions, test_ages, test_male = predict(data, "test")
    train_predictions, train_ages, train_male = predict(data, "train")
    predictions = np.concatenate([val_predictions, test_predictions])
    ages = np.concatenate([val_ages, test_ages])
    male = np.concatenate([val_male, test_male])
    by_group, passed = {}, 0
    for calibration_idx, measured in redraw_splits(len(ages), len(val_ages), k, seed):
        calibration = calibrate(predictions[calibration_idx], ages[calibration_idx], male=male[calibration_idx],
                                train_predictions=train_predictions, train_targets=train_ages, train_male=train_male)
        low, high = IntervalModel(calibration, confidence).bounds(predictions[measured], male[measured])
        rows = coverage_table(predictions[measured], ages[measured], low, high,
                              groups_of(predictions[measured], ages[measured], male[measured]))
        passed += meets_targets(rows, confidence)
        for row in rows:
            by_group.setdefault((row["group"], row["value"]), []).append(row)
    print(f"\n{k} re-draws of {len(val_ages)} calibration studies from validation + test ({len(ages)}), the other "
          f"{len(ages) - len(val_ages)} measured (seed {seed}): {passed} of {k} meet the targets")
    print()
    print("| group | value | mean n | coverage mean | 5% - 95% | mean width (months) |")
    print("|---|---|---|---|---|---|")
    for (group, value), rows in sorted(by_group.items(), key=lambda item: (item[0][0] != "all", item[0])):
        if group == "sex x band":
            continue
        coverage = np.array([r["coverage"] for r in rows])
        n = np.mean([r["n"] for r in rows])
        flag = f" (n<{MIN_GROUP})" if n < MIN_GROUP else ""
        print(f"| {group} | {value} | {n:.0f} | {coverage.mean():.1%}{flag} | {np.percentile(coverage, 5):.1%} - "
              f"{np.percentile(coverage, 95):.1%} | {np.mean([r['mean_width_months'] for r in rows]):.1f} |")


if __name__ == "__main__":
    raise SystemExit(main())
