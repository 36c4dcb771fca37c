"""Audit commands: `boneage audit run --from --to`, `audit import-readings FILE`,
`audit demo-history`, `audit remove-demo`, `audit export-readings OUT`."""

from __future__ import annotations

import argparse

from core.errors import UserFacingError
from core.settings import Settings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="accuracy and fairness audits against readers' bone ages")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    run = commands.add_parser("run", help="audit a window now and store the run")
    run.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD, UTC)")
    run.add_argument("--to", dest="end", required=True, help="day after the last (exclusive)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a threshold, e.g. sex_gap_months=2 (repeatable)")
    run.set_defaults(handler=run_command)

    imports = commands.add_parser("import-readings", help="import readings from a CSV (all rows or none)")
    imports.add_argument("path")
    imports.set_defaults(handler=import_command)

    demo = commands.add_parser("demo-history", help="fill an empty database with a SYNTHETIC history "
                                                    "(run through the active model) and weekly audits")
    demo.add_argument("--weeks", type=int, default=6)
    demo.add_argument("--per-week", type=int, default=40)
    demo.add_argument("--shift-week", type=int, default=4, help="the week (0 = oldest) whose error is shifted")
    demo.add_argument("--shift-sex", choices=("F", "M"), default="F")
    demo.add_argument("--shift-months", type=float, default=18.0)
    demo.add_argument("--image-size", type=int, default=256)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="add it even if the database has assessments")
    demo.set_defaults(handler=demo_command)

    commands.add_parser("remove-demo", help="remove everything the demonstration history made").set_defaults(
        handler=remove_demo_command)

    export = commands.add_parser("export-readings", help="assessments with readings as an RSNA-layout dataset")
    export.add_argument("out", help="a new folder")
    export.add_argument("--include-synthetic", action="store_true")
    export.set_defaults(handler=export_command)


def _deps():
    from db.files import open_file_store
    from db.session import unit_of_work_factory

    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings, unit_of_work_factory(settings.database_url), open_file_store(settings)


def run_command(args) -> int:
    from services.audits import run_audit

    parameters = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserFacingError(f"--param takes NAME=VALUE, got {item!r}")
        parameters[name.strip()] = value.strip()
    _, uow, files = _deps()
    run = run_audit(args.start, args.end, trigger="cli", uow=uow, files=files, parameters=parameters)
    print(f"audit {run.id}: {run.status}, {run.finding_count} finding(s)")
    for finding in run.findings:
        print(f"  - {finding['kind']} [{finding['group']}]: {finding['message']}")
    if run.error:
        print(run.error)
    return 0 if run.status == "succeeded" else 1


def import_command(args) -> int:
    from pathlib import Path

    from services.readings import import_readings_csv

    _, uow, _ = _deps()
    try:
        text = Path(args.path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserFacingError(f"cannot read {args.path}: {exc.strerror}") from None
    report = import_readings_csv(text, uow=uow)
    if report.ok:
        print(f"imported {report.imported} readings")
        return 0
    print(f"nothing imported: {len(report.errors)} of {report.rows} rows refused")
    for error in report.errors:
        print(f"  {'file' if error['row'] == 0 else 'row %d' % error['row']}: {error['error']}")
    return 1


def demo_command(args) -> int:
    from services.demo_history import DemoPlan, fill_demo_history
    from services.predictors import PredictorCache

    settings, uow, files = _deps()
    plan = DemoPlan(weeks=args.weeks, per_week=args.per_week, shift_week=args.shift_week, shift_sex=args.shift_sex,
                    shift_months=args.shift_months, image_size=args.image_size, seed=args.seed)
    runs = fill_demo_history(plan, uow=uow, files=files, predictors=PredictorCache(device=settings.device),
                             force=args.force)
    print(f"SYNTHETIC demonstration history: {plan.weeks * plan.per_week} assessments, {len(runs)} audit runs "
          f"(error shifted by {plan.shift_months:g} months for sex {plan.shift_sex} in week {plan.shift_week}). "
          "Open /audits; remove it with `boneage audit remove-demo`.")
    return 0


def remove_demo_command(args) -> int:
    from services.audits import remove_synthetic

    _, uow, files = _deps()
    removed = remove_synthetic(uow=uow, files=files)
    print(f"removed {removed['assessments']} synthetic assessments, {removed['readings']} readings, "
          f"{removed['audit_runs']} audit runs")
    return 0


def export_command(args) -> int:
    from services.readings_dataset import export_readings_dataset

    _, uow, files = _deps()
    summary = export_readings_dataset(args.out, uow=uow, files=files, include_synthetic=args.include_synthetic)
    print(f"wrote {summary['records']} records to {args.out} (RSNA training layout; label: {summary['label']})")
    return 0
