"""Training and registry commands (issue 7):

    boneage datasets [list] | datasets register PATH [--name N]
    boneage train-job queue --dataset N --recipe R [--epochs ...] [--follow]
    boneage train-job follow|cancel|resume ID ; boneage train-job list
    boneage models [list] | models activate NAME [--note T] [--force] | models rollback [--note T]
    boneage models history [--since DATE] [--until DATE]

Each builds its dependencies from the settings and calls one service, as the web does.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from core.dates import parse_when
from core.errors import UserFacingError
from core.settings import Settings


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "cli"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    datasets = subparsers.add_parser("datasets", help="registered training datasets (list, register)")
    ds = datasets.add_subparsers(dest="datasets_command", metavar="ACTION")
    datasets.set_defaults(handler=datasets_list)
    ds.add_parser("list", help="list registered datasets").set_defaults(handler=datasets_list)
    register = ds.add_parser("register", help="validate and register a dataset folder under BONEAGE_DATA_DIR")
    register.add_argument("path", help="a folder under the data root (relative to it, or absolute)")
    register.add_argument("--name", help="default: the folder's name")
    register.set_defaults(handler=datasets_register)

    job = subparsers.add_parser("train-job", help="training jobs run by the training worker")
    jobs = job.add_subparsers(dest="job_command", required=True, metavar="ACTION")
    queue = jobs.add_parser("queue", help="queue a training job")
    queue.add_argument("--dataset", required=True, help="a registered dataset's name")
    queue.add_argument("--recipe", default="default", help="seed, default, large or demo (default: default)")
    queue.add_argument("--epochs", type=int)
    queue.add_argument("--image-size", type=int)
    queue.add_argument("--time-budget", type=float, help="CPU seconds")
    queue.add_argument("--init", help="random, imagenet or a registered model's name (fine-tune)")
    queue.add_argument("--seed", type=int)
    queue.add_argument("--follow", action="store_true", help="then follow it with a progress bar")
    queue.set_defaults(handler=job_queue)
    for name, handler, text in (("follow", job_follow, "show a job's progress until it stops"),
                                ("cancel", job_cancel, "cancel a queued or running job"),
                                ("resume", job_resume, "queue a crashed or cancelled job again")):
        action = jobs.add_parser(name, help=text)
        action.add_argument("job_id")
        action.set_defaults(handler=handler)
    jobs.add_parser("list", help="recent training jobs").set_defaults(handler=job_list)

    models = subparsers.add_parser("models", help="registered models (`*` = serving); activate, rollback, history")
    models.set_defaults(handler=models_list)
    ms = models.add_subparsers(dest="models_command", metavar="ACTION")
    ms.add_parser("list", help="list registered models").set_defaults(handler=models_list)
    activate = ms.add_parser("activate", help="promote a model (compared with the serving one first)")
    activate.add_argument("name")
    activate.add_argument("--note", help="why (required with --force)")
    activate.add_argument("--force", action="store_true", help="activate even if it compared worse or not at all")
    activate.set_defaults(handler=models_activate)
    rollback = ms.add_parser("rollback", help="serve again the model that served before the current one")
    rollback.add_argument("--note")
    rollback.set_defaults(handler=models_rollback)
    history = ms.add_parser("history", help="who activated which model when and why; with --since, which served")
    history.add_argument("--since", help="ISO date or time (UTC unless it says otherwise)")
    history.add_argument("--until", help="ISO date or time")
    history.set_defaults(handler=models_history)


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings


def _uow(settings: Settings):
    from db.session import unit_of_work_factory

    return unit_of_work_factory(settings.database_url)


def _queue(settings: Settings):
    from services.queue import CeleryTaskQueue, make_celery

    return CeleryTaskQueue(make_celery(settings, main="boneage-cli"), settings)


# ------------------------------------------------------------------ datasets


def datasets_list(args) -> int:
    from services.datasets import list_datasets

    found = list_datasets(uow=_uow(_settings()))
    if not found:
        print("no datasets registered; `boneage datasets register PATH`")
    for d in found:
        print(f"{d.name:<24} {d.n_records:>6} studies  {d.path}" + ("  [synthetic]" if d.synthetic else ""))
    return 0


def datasets_register(args) -> int:
    from services.datasets import register_dataset

    settings = _settings()
    d = register_dataset(args.path, uow=_uow(settings), data_root=settings.datasets_dir, name=args.name, by=_user())
    s = d.summary
    print(("registered" if d.created else "already registered") + f" dataset {d.name} ({d.path}): "
          f"{d.n_records} studies, {s['male']} M / {s['female']} F, bone age {s['age_months_min']}-"
          f"{s['age_months_max']} months (mean {s['age_months_mean']})"
          + ("; SYNTHETIC: not for clinical use" if d.synthetic else ""))
    return 0


# ------------------------------------------------------------------- jobs


def job_queue(args) -> int:
    from services.training_jobs import InvalidTrainingRequest, TrainingRequest, queue_training_job

    settings = _settings()
    request = TrainingRequest(dataset=args.dataset, recipe=args.recipe, epochs=args.epochs,
                              image_size=args.image_size, time_budget_s=args.time_budget, init=args.init,
                              seed=args.seed, queued_by=_user())
    try:
        job_id = queue_training_job(request, uow=_uow(settings), queue=_queue(settings),
                                    data_root=settings.datasets_dir)
    except InvalidTrainingRequest as exc:
        raise UserFacingError("nothing was queued: " + "; ".join(f"--{k.replace('_', '-')}: {v}"
                                                                 for k, v in exc.errors.items())) from None
    print(f"queued training job {job_id}")
    if args.follow:
        return _follow(settings, job_id)
    print(f"follow it with: boneage train-job follow {job_id}")
    return 0


def job_follow(args) -> int:
    return _follow(_settings(), args.job_id)


def _follow(settings: Settings, job_id: str, poll_s: float = 1.0) -> int:
    from tqdm import tqdm

    from services.training_jobs import mark_crashed

    uow = _uow(settings)
    bar = None
    seen = 0
    try:
        while True:
            mark_crashed(uow=uow, stale_s=settings.training_stale_s)
            with uow() as work:
                job = work.training_jobs.get(job_id)
                if job is None:
                    raise UserFacingError(f"there is no training job with id {job_id!r}")
                epochs = work.training_jobs.epochs(job_id)
            if job.total_epochs and bar is None:
                bar = tqdm(total=job.total_epochs, desc=f"training {job.recipe} on {job.dataset.name}", unit="epoch")
            if bar is not None:
                bar.total = job.total_epochs or bar.total
                for e in epochs[seen:]:
                    bar.set_postfix(loss=f"{e.train_loss:.3f}" if e.train_loss is not None else "nan",
                                    val_mae=f"{e.val_mae:.2f}" if e.val_mae is not None else "nan")
                bar.n = len(epochs)
                bar.refresh()
                seen = len(epochs)
            if job.status.finished:
                break
            time.sleep(poll_s)
    finally:
        if bar is not None:
            bar.close()
    print(f"training job {job_id}: {job.status}")
    if job.error:
        print(job.error, file=sys.stderr)
    if job.model_version is not None:
        mae = ((job.report or {}).get("evaluation") or {}).get("regression", {}).get("mae")
        print(f"registered {job.model_version.name} (not active)" + (f"; test MAE {mae:.2f} months" if mae else ""))
        print(f"promote it with: boneage models activate {job.model_version.name} --note '...'")
    return 0 if str(job.status) == "succeeded" else 1


def job_cancel(args) -> int:
    from services.training_jobs import cancel_training_job

    status = cancel_training_job(args.job_id, uow=_uow(_settings()))
    print(f"training job {args.job_id}: {status}" + (" (stops at the next batch)" if status == "cancelling" else ""))
    return 0


def job_resume(args) -> int:
    from services.training_jobs import resume_training_job

    settings = _settings()
    resume_training_job(args.job_id, uow=_uow(settings), queue=_queue(settings))
    print(f"training job {args.job_id} queued again; it continues from its last checkpoint")
    return 0


def job_list(args) -> int:
    from services.training_jobs import mark_crashed

    settings = _settings()
    uow = _uow(settings)
    mark_crashed(uow=uow, stale_s=settings.training_stale_s)
    with uow() as work:
        for job in work.training_jobs.recent(50):
            model = job.model_version.name if job.model_version else ""
            print(f"{job.id}  {job.created_at:%Y-%m-%d %H:%M}  {str(job.status):<10} {job.dataset.name:<16} "
                  f"{job.recipe:<8} epoch {job.epoch}/{job.total_epochs or '?'}  {model}")
    return 0


# ----------------------------------------------------------------- models


def models_list(args) -> int:
    from boneage.service_cli import list_models_command

    return list_models_command(args)


def models_activate(args) -> int:
    from services.promotion import promote_model

    activation = promote_model(args.name, uow=_uow(_settings()), by=_user(), note=args.note, force=args.force)
    if activation is None:
        print(f"{args.name} already serves; nothing changed")
    else:
        print(f"{activation.model} now serves (was {activation.previous_model or 'none'})"
              + (" [forced]" if activation.forced else ""))
    return 0


def models_rollback(args) -> int:
    from services.promotion import rollback_model

    activation = rollback_model(uow=_uow(_settings()), by=_user(), note=args.note)
    print(f"rolled back: {activation.model} serves again (was {activation.previous_model})")
    return 0


def models_history(args) -> int:
    from services.promotion import activation_history, served_between

    uow = _uow(_settings())
    since, until = parse_when(args.since, "--since"), parse_when(args.until, "--until")
    if since is not None:
        print(f"served between {since:%Y-%m-%d %H:%M} and {until:%Y-%m-%d %H:%M} UTC:" if until else
              f"served since {since:%Y-%m-%d %H:%M} UTC:")
        for period in served_between(uow=uow, since=since, until=until):
            end = f"{period.until:%Y-%m-%d %H:%M:%S}" if period.until else "now"
            print(f"  {period.model:<24} {period.since:%Y-%m-%d %H:%M:%S} -> {end}")
    rows = activation_history(uow=uow, since=since, until=until)
    if not rows:
        print("no activations recorded")
    for a in rows:
        print(f"{a.activated_at:%Y-%m-%d %H:%M:%S}  {a.action:<8} {a.model:<24} (was {a.previous_model or '-'})  "
              f"by {a.activated_by or '?'}" + ("  FORCED" if a.forced else "") + (f"  — {a.note}" if a.note else ""))
    return 0
