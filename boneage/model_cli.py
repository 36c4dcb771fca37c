"""Model commands of the `boneage` script: synth, train, evaluate, ablate, predict.

Each handler imports its module lazily, so `boneage --help` and the service commands
start without torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_commands(subparsers) -> None:
    synth = subparsers.add_parser("synth", help="write SYNTHETIC hand radiographs in the RSNA training layout")
    synth.add_argument("--n", type=int, required=True, help="number of images")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_synth)

    train = subparsers.add_parser("train", help="train a bone-age model")
    train.add_argument("--data", type=Path, required=True, help="RSNA-layout folder (real or synthetic)")
    train.add_argument("--recipe", default="default", help="seed | default | large | demo (default: default)")
    train.add_argument("--out", type=Path, required=True, help="folder for model.pt, model.json and last.pt")
    train.add_argument("--init", help="random | imagenet | PATH to a checkpoint (default: the recipe's)")
    train.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    train.add_argument("--image-size", type=int, help="override the recipe's image size")
    train.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="fit the schedule into this much training CPU time (process time, measured on the "
                            "first epoch; with --threads 1 it is one core's seconds)")
    train.add_argument("--limit", type=int, help="train on a seeded subset of this many studies")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, help="CPU threads for torch")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser("evaluate", help="write the evaluation report of a model on held-out data")
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.set_defaults(handler=_evaluate)

    ablate = subparsers.add_parser("ablate", help="run the seed report's ablation rows and write their table")
    ablate.add_argument("--data", type=Path, required=True)
    ablate.add_argument("--out", type=Path, required=True)
    ablate.add_argument("--recipe", default="seed")
    ablate.add_argument("--init", help="random | imagenet (default: the recipe's)")
    ablate.add_argument("--epochs", type=int)
    ablate.add_argument("--time-budget", type=float, metavar="SECONDS", help="per row")
    ablate.add_argument("--limit", type=int)
    ablate.set_defaults(handler=_ablate)

    predict = subparsers.add_parser("predict", help="bone age, stage and Grad-CAM heatmap for one radiograph")
    predict.add_argument("image", type=Path)
    predict.add_argument("--sex", required=True, type=_sex, help="M or F")
    predict.add_argument("--model", type=Path, help="checkpoint (default: the active model of the service at DATABASE_URL)")
    predict.add_argument("--heatmap", type=Path, help="where to write the overlay PNG (default: IMAGE.heatmap.png)")
    predict.add_argument("--chronological-age", type=float, metavar="MONTHS",
                         help="compare with the Greulich-Pyle (Brush) reference for this age")
    predict.set_defaults(handler=_predict)


def _sex(value: str) -> str:
    from core.stages import normalise_sex

    try:
        return normalise_sex(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _synth(args: argparse.Namespace) -> int:
    from training.synth import generate_dataset

    out = generate_dataset(args.out, args.n, size=args.size, seed=args.seed)
    print(f"wrote {args.n} SYNTHETIC radiographs to {out} (not real patients; not for clinical use)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.train import train

    path = train(args.data, args.recipe, args.out, seed=args.seed, epochs=args.epochs, image_size=args.image_size,
                 time_budget_s=args.time_budget, limit=args.limit, init=args.init, resume=args.resume,
                 threads=args.threads)
    print(json.dumps(json.loads(path.with_suffix(".json").read_text())["metrics"], indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate

    metrics = evaluate(args.model, args.data, args.out)
    regression = metrics["regression"]
    print(f"MAE {regression['mae']:.2f} months, RMSE {regression['rmse']:.2f}, R² {regression['r2']:.3f} "
          f"on {regression['n']} held-out studies; report: {args.out / 'report.md'}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from training.ablate import run_ablation

    rows = run_ablation(args.data, args.out, recipe=args.recipe, init=args.init, epochs=args.epochs,
                        time_budget_s=args.time_budget, limit=args.limit)
    for row in rows:
        print(f"{row['name']:<32} MAE {row['mae']:.2f}")
    print(f"table: {args.out / 'ablation.md'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from core.errors import UserFacingError
    from core.imageio import ImageDecodeError, decode_image
    from training.predict import Predictor
    from core.greulich_pyle import compare_with_chronological_age
    from core.stages import format_years_months

    model = args.model or _default_model()
    try:
        image = decode_image(args.image)
    except (ImageDecodeError, OSError) as exc:
        raise UserFacingError(f"{args.image}: {exc}") from exc
    predictor = Predictor.from_checkpoint(model)
    [result] = predictor.predict([image], [args.sex])
    heatmap_path = args.heatmap or args.image.with_suffix(".heatmap.png")
    heatmap_path.write_bytes(result.overlay_png)
    print(f"bone age: {result.bone_age_months:.1f} months ({format_years_months(result.bone_age_months)})")
    print(f"stage:    {result.stage}")
    if args.chronological_age is not None:
        comparison = compare_with_chronological_age(result.bone_age_months, args.chronological_age, args.sex)
        z = "n/a" if comparison.z_score is None else f"{comparison.z_score:+.2f} SD"
        print(f"versus chronological age {args.chronological_age:.0f} months: {z}, {comparison.reading}")
    print(f"heatmap:  {heatmap_path}")
    print(f"model:    {predictor.model_version}" + (" (SYNTHETIC demo model, not for clinical use)"
                                                    if predictor.synthetic else ""))
    print("Decision support only, not a diagnosis.")
    return 0


def _default_model() -> Path:
    """The service's active model (DATABASE_URL); a database that cannot be read is
    reported as such, not as "no model"."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.errors import UserFacingError
    from core.settings import Settings
    from db.session import unit_of_work_factory
    from services.model_registry import active_model

    settings = Settings.from_env()
    try:
        active = active_model(uow=unit_of_work_factory(settings.database_url))
    except SQLAlchemyError as exc:
        raise UserFacingError(
            f"no --model given, and the active model could not be read from the database "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Fix DATABASE_URL or pass --model PATH."
        ) from exc
    if active is None:
        raise UserFacingError("no --model given and no active model is registered: pass --model PATH "
                              "(a model.pt written by `boneage train`) or run `boneage register-model PATH --activate`")
    return active.checkpoint_path
