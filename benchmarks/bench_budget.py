"""Accuracy per CPU second (issue 12): recipes trained with the same CPU budget, compared on the
held-out split, by sex and by age band, with the share of the budget used and where Grad-CAM looks.

    python benchmarks/bench_budget.py --data ../shared/data/rsna-sample --budget 1200 --out bench-out/budget

Each run is a subprocess training from random weights (`init random`) on one thread, with as
many epochs as its budget allows (the recipe's epoch count is lifted); the
budget counts each process's CPU time, so runs side by side get the same compute however busy
the machine is. Runs (--runs, comma-separated; NAME=RECIPE[:FIELD=VALUE...] adds a variant, and seed=N
trains it under another seed: weights, order and augmentation; the split stays the same):
  seed-budget     the report's recipe given as many epochs as the budget allows
  default         the project's recipe (cut to the located hand, CLAHE, 160 px grown from 96 px)
  default-whole-film   ... on the whole film, as before 7 Dec
  default-224     ... at 224 px (and -256)
  default-lds     ... with label-distribution-smoothing weights
  default-bmse    ... with balanced MSE instead of smooth L1 (training/balanced_mse.py)
  default-fixed-size   ... at 160 px throughout, without progressive resizing
  default-percentile   ... without CLAHE: the percentile stretch alone
(docs/benchmarks.md's earlier runs default-progressive, default-clahe and default-crop added those
three to the `default` of their day; all are in `default` now.)
Reported for each: held-out MAE, RMSE, R², MAE by sex and by true age band, CPU seconds used
and their share of the budget, and the Grad-CAM mass inside the located hand's box on up to
64 held-out images (with the box's share of the input, the mass a heatmap blind to the hand
would score). Test images are never trained on or selected on. The runs inherit
BONEAGE_TRAIN_PRECISION (e.g. bf16 on a CPU where it is faster: README), so every run of one
invocation trains in the same precision; each row records it.

    python benchmarks/bench_budget.py --data ../shared/data/rsna-sample --out bench-out/budget \
        --runs default --recalibrate [linear,linear-sex,isotonic,inverse]

--recalibrate (implies --report-only; writes nothing into --out): for each run's checkpoint,
fits each post-hoc recalibration (training/recalibration.py) on its validation split exactly
as training does (the chosen model's predictions with the recipe's TTA), compares the methods
by repeated 5-fold cross-validation on the validation split only, and prints the test split's
MAE, RMSE, R², by sex and by age band (MAE and signed error) without and with each map.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RUNS = {
    "seed-budget": ("seed", {}),
    "default": ("default", {}),
    "default-whole-film": ("default", {"crop": "none"}),  # default before it cropped to the hand
    "default-224": ("default", {"image_size": 224}),
    "default-256": ("default", {"image_size": 256}),
    "default-lds": ("default", {"sample_weighting": "lds"}),
    "default-bmse": ("default", {"loss": "balanced_mse_z"}),
    "default-fixed-size": ("default", {"progressive_from": 0}),
    "default-percentile": ("default", {"intensity": "percentile"}),
}
GRADCAM_IMAGES = 64
UNCAPPED_EPOCHS = 1000


def parse_run(spec: str) -> tuple[str, str, dict]:
    """'default' or 'name=recipe:field=value:field=value'."""
    if "=" not in spec.split(":")[0]:
        recipe, overrides = RUNS[spec]
        return spec, recipe, dict(overrides)
    name, rest = spec.split("=", 1)
    recipe, *pairs = rest.split(":")
    return name, recipe, dict(_typed(*pair.split("=", 1)) for pair in pairs)


def _typed(field: str, value: str):
    for cast in (int, float):
        try:
            return field, cast(value)
        except ValueError:
            pass
    return field, {"true": True, "false": False}.get(value.lower(), value)


def train_one(args: argparse.Namespace) -> int:
    from training.recipes import get_recipe
    from training.train import train

    overrides = json.loads(args.overrides)
    seed = int(overrides.pop("seed", 0))  # the training seed (weights, order, augmentation), not a recipe field
    # The budget decides the epochs: a recipe's own epoch count would stop a fast machine's run
    # short of its budget (on the 6 Dec EPYC, `default` reached its 40 epochs at 80-98% of 1,200 s).
    recipe = get_recipe(args.recipe).with_overrides(**{"epochs": UNCAPPED_EPOCHS, **overrides})
    split = None
    if args.fold:  # "I/K": cross-fitting fold I of K (training/split.py)
        from training.rsna import load_records
        from training.split import cross_fitting_split

        fold, folds = (int(part) for part in args.fold.split("/"))
        split = cross_fitting_split(load_records(args.data), folds, fold)
    # random weights unless the run names its own (init=PATH: a checkpoint the project trained)
    train(args.data, recipe, args.out, init=overrides.get("init", "random"), threads=1, time_budget_s=args.budget,
          progress=True, split=split, seed=seed)
    return 0


def evaluate_run(name: str, out: Path, data_dir: Path, budget: float) -> dict:
    from core.hand import locate_hand
    from core.imageio import decode_image
    from training.cache import load_image_array
    from training.gradcam import GradCamExplainer, mass_in_mask
    from training.inference import predict_months
    from training.metrics import all_metrics
    from training.predict import Predictor
    from training.preprocess import crop_region, preprocess_mask
    from training.rsna import load_records

    predictor = Predictor.from_checkpoint(out / "model.pt", device="cpu")
    metadata = predictor.metadata
    test_ids = set(metadata["split"]["test"])
    records = [r for r in load_records(data_dir) if r.id in test_ids]
    squares = load_image_array(records, predictor.preprocessing, progress=False)
    male = np.array([r.male for r in records], dtype=np.float32)
    truth = np.array([r.bone_age_months for r in records], dtype=np.float32)
    predicted = predict_months(predictor.model, squares, male, tta=predictor.recipe.tta, device=predictor.device)
    metrics = all_metrics(truth, predicted, [r.sex for r in records])

    inside, area = [], []
    chosen = np.linspace(0, len(records) - 1, min(GRADCAM_IMAGES, len(records))).round().astype(int)
    explainer = GradCamExplainer(predictor.model)
    cams = np.concatenate([explainer.heatmaps(squares[chosen[i : i + 16]], male[chosen[i : i + 16]])
                           for i in range(0, len(chosen), 16)])
    for i, cam in zip(chosen, cams):
        gray = decode_image(records[i].image_path)
        location = locate_hand(gray)
        if not location.found:
            continue
        hand = np.zeros(gray.shape, dtype=bool)
        left, top, right, bottom = location.box
        hand[top:bottom, left:right] = True
        mask = preprocess_mask(hand, predictor.preprocessing, crop_region(gray, predictor.preprocessing))
        inside.append(mass_in_mask(cam, mask))
        area.append(float(mask.mean()))
    used = metadata["metrics"]["train_cpu_seconds"]
    return {
        "run": name, "recipe": metadata["recipe"], "epochs_run": metadata["metrics"]["epochs_run"],
        "cpu_seconds": used, "budget_share": used / budget, "val_mae": metadata["metrics"]["val_mae"],
        "training_precision": metadata.get("training_precision", {"dtype": "fp32", "channels_last": False}),
        "n": metrics["n"], **{k: metrics["regression"][k] for k in ("mae", "rmse", "r2")},
        "by_sex": {sex: metrics["by_sex"][sex]["mae"] for sex in ("M", "F")},
        "by_age_band": [{k: row[k] for k in ("band", "n", "mae", "mean_signed_error")} for row in metrics["by_age_band"]],
        "gradcam_mass_in_hand_box": float(np.mean(inside)) if inside else None,
        "hand_box_area_share": float(np.mean(area)) if area else None,
    }


def recalibration_report(name: str, out: Path, data_dir: Path, methods: list[str]) -> dict:
    """The test metrics of one checkpoint without and with each recalibration method fitted on its
    validation split as training/train.py fits it, and the methods' cross-validated validation MAE."""
    from training import recalibration
    from training.inference import predict_months
    from training.metrics import all_metrics
    from training.model import model_from_checkpoint
    from training.recipes import Recipe
    from training.train import TrainingData

    model, metadata = model_from_checkpoint(out / "model.pt")
    recipe = Recipe.from_dict(metadata["recipe"])
    data = TrainingData.prepare(data_dir, recipe, split=metadata["split"], progress=False)
    model.recalibration = None  # the network's output (after TTA): what training fits the map on
    (val_images, val_male, val_ages), (test_images, test_male, test_ages) = data.part("val"), data.part("test")
    val = predict_months(model, val_images, val_male, tta=recipe.tta)
    test = predict_months(model, test_images, test_male, tta=recipe.tta)
    sexes = np.where(test_male > 0.5, "M", "F")
    cv = recalibration.cross_validate(val, val_ages, val_male, ["none", *methods])
    rows = []
    for method in ["none", *methods]:
        mapping = recalibration.fit(val, val_ages, val_male, method)
        predicted = recalibration.apply(mapping, test, test_male)
        metrics = all_metrics(test_ages, predicted, sexes)
        # paired with "none", study by study: the change in absolute error and its standard error
        cv_change = cv[method]["abs_errors"] - cv["none"]["abs_errors"]
        test_change = np.abs(predicted - test_ages) - np.abs(test - test_ages)
        rows.append({
            "run": name, "method": method, "mapping": mapping, "cv_val_mae": cv[method]["mae"], "cv_val_sd": cv[method]["sd"],
            "cv_change": float(cv_change.mean()), "cv_change_se": float(cv_change.std(ddof=1) / np.sqrt(len(cv_change))),
            "test_change": float(test_change.mean()),
            "test_change_se": float(test_change.std(ddof=1) / np.sqrt(len(test_change))),
            "val_mae_in_sample": float(np.mean(np.abs(recalibration.apply(mapping, val, val_male) - val_ages))),
            "n": metrics["n"], **{k: metrics["regression"][k] for k in ("mae", "rmse", "r2")},
            "by_sex": {sex: metrics["by_sex"][sex]["mae"] for sex in ("M", "F")},
            "by_age_band": [{k: row[k] for k in ("band", "n", "mae", "mean_signed_error")}
                            for row in metrics["by_age_band"]],
        })
    return {"run": name, "val_n": int(len(val)), "test_n": int(len(test)), "rows": rows}


def print_recalibration(report: dict) -> None:
    rows = report["rows"]
    bands = [row["band"] for row in rows[0]["by_age_band"]]
    print(f"\n{report['run']}: validation n={report['val_n']} (fit, cross-validation), test n={report['test_n']}")
    print(f"{'method':<11} {'CV val MAE':>12} {'CV change':>12} {'MAE':>6} {'test change':>12} {'RMSE':>6} "
          f"{'R²':>5} {'boys':>6} {'girls':>6} "
          + " ".join(f"{b:>7}" for b in bands) + " | signed: " + " ".join(f"{b:>7}" for b in bands))
    for row in rows:
        band_mae = " ".join(f"{b['mae']:>7.1f}" if b["mae"] is not None else f"{'-':>7}" for b in row["by_age_band"])
        signed = " ".join(f"{b['mean_signed_error']:>+7.1f}" if b["mean_signed_error"] is not None else f"{'-':>7}"
                          for b in row["by_age_band"])
        print(f"{row['method']:<11} {row['cv_val_mae']:>7.2f}±{row['cv_val_sd']:<4.2f} "
              f"{row['cv_change']:>+6.2f}±{row['cv_change_se']:<5.2f} {row['mae']:>6.2f} "
              f"{row['test_change']:>+6.2f}±{row['test_change_se']:<5.2f} {row['rmse']:>6.2f} {row['r2']:>5.2f} {row['by_sex']['M']:>6.1f} {row['by_sex']['F']:>6.1f} "
              f"{band_mae} | signed: {signed}")
    for row in rows:
        mapping = row["mapping"]
        if mapping and mapping["method"] in ("linear", "inverse"):
            print(f"  {mapping['method']}: months = {mapping['intercept']:.1f} + {mapping['slope']:.3f} x prediction")
        elif mapping and mapping["method"] == "linear-sex":
            print("  linear-sex: " + "; ".join(f"{sex} {line['intercept']:.1f} + {line['slope']:.3f} x"
                                               for sex, line in mapping["by_sex"].items()))
    print("CV val MAE: repeated 5-fold cross-validation on the validation split (mean ± SD over 20 repeats); "
          "the other columns: the test split with the map fitted on the whole validation split; "
          "changes: the mean change in absolute error against 'none', study by study, ± its standard error")


def print_table(rows: list[dict]) -> None:
    bands = [row["band"] for row in rows[0]["by_age_band"]]
    print(f"\n{'run':<16} {'epochs':>6} {'CPU s':>6} {'used':>5} {'MAE':>6} {'RMSE':>6} {'R²':>5} "
          f"{'boys':>6} {'girls':>6} " + " ".join(f"{b:>7}" for b in bands) + f" {'CAM in hand':>11}")
    for row in rows:
        sex = row["by_sex"]
        band_mae = " ".join(f"{b['mae']:>7.1f}" if b["mae"] is not None else f"{'-':>7}" for b in row["by_age_band"])
        cam = (f"{row['gradcam_mass_in_hand_box']:.2f}/{row['hand_box_area_share']:.2f}"
               if row["gradcam_mass_in_hand_box"] is not None else "-")
        print(f"{row['run']:<16} {row['epochs_run']:>6} {row['cpu_seconds']:>6.0f} {row['budget_share']:>5.0%} "
              f"{row['mae']:>6.2f} {row['rmse']:>6.2f} {row['r2']:>5.2f} {sex.get('M', float('nan')):>6.1f} "
              f"{sex.get('F', float('nan')):>6.1f} {band_mae} {cam:>11}")
    print("band columns: held-out MAE (months) by true age band; CAM in hand: Grad-CAM mass inside the hand's box / "
          "the box's share of the input")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=1200, help="training CPU seconds per run (default 1200)")
    parser.add_argument("--runs", default="seed-budget,default", help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--report-only", action="store_true", help="evaluate runs already trained in --out")
    parser.add_argument("--recalibrate", nargs="?", const="linear,linear-sex,isotonic,inverse", default=None,
                        metavar="METHODS", help="compare post-hoc recalibrations of runs already trained in --out "
                        "(default linear,linear-sex,isotonic,inverse); prints only, writes nothing")
    parser.add_argument("--json", type=Path, default=None, help="with --recalibrate: also write the rows here")
    args = parser.parse_args()
    runs = [parse_run(spec) for spec in args.runs.split(",")]
    if args.recalibrate:
        reports = [recalibration_report(name, args.out / name, args.data, args.recalibrate.split(","))
                   for name, _, _ in runs]
        for report in reports:
            print_recalibration(report)
        if args.json:
            args.json.write_text(json.dumps(reports, indent=2))
        return 0
    if not args.report_only:
        train_all(runs, args)
    rows = [evaluate_run(name, args.out / name, args.data, args.budget) for name, _, _ in runs]
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print_table(rows)
    return 0


def train_all(runs, args, folds: dict[str, str] | None = None) -> None:
    """Train each (name, recipe, overrides) in a subprocess under args.out/name, args.parallel at
    a time; folds maps a run's name to its cross-fitting fold ("I/K")."""
    pending, running, started = list(runs), {}, time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < args.parallel:
            name, recipe, overrides = pending.pop(0)
            out = args.out / name
            out.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, __file__, "train-one", "--data", str(args.data), "--out", str(out),
                       "--recipe", recipe, "--overrides", json.dumps(overrides), "--budget", str(args.budget)]
            if folds and name in folds:
                command += ["--fold", folds[name]]
            print(f"[{time.time() - started:6.0f}s] start {name}: {recipe} {overrides}", flush=True)
            running[name] = subprocess.Popen(command, stdout=(out / "train.log").open("w"),
                                             stderr=subprocess.STDOUT, env=env)
        time.sleep(5)
        for name, process in list(running.items()):
            if process.poll() is not None:
                print(f"[{time.time() - started:6.0f}s] {name} exited {process.returncode}", flush=True)
                if process.returncode != 0:
                    raise SystemExit(f"{name} failed: see {args.out / name / 'train.log'}")
                del running[name]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if len(sys.argv) > 1 and sys.argv[1] == "train-one":
        one = argparse.ArgumentParser()
        one.add_argument("train_one")
        one.add_argument("--data", type=Path, required=True)
        one.add_argument("--out", type=Path, required=True)
        one.add_argument("--recipe", required=True)
        one.add_argument("--overrides", default="{}")
        one.add_argument("--budget", type=float, required=True)
        one.add_argument("--fold", default=None, help="I/K: train on cross-fitting fold I of K")
        sys.exit(train_one(one.parse_args()))
    sys.exit(main())
