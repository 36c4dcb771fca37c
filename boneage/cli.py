"""The `boneage` console script.

Each command group lives next to the code it drives and registers itself here
through an ``add_commands(subparsers)`` function, so this module stays a thin
dispatcher and importing it never pulls in torch.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import UserFacingError

COMMAND_GROUPS = (
    "boneage.model_cli",  # synth, train, evaluate, ablate, predict
    "boneage.service_cli",  # db, up, register-model
    "boneage.training_cli",  # datasets, train-job, models (list, activate, rollback, history)
    "boneage.audit_cli",  # audit run, import-readings, demo-history, remove-demo, export-readings
    "boneage.users_cli",  # users add, token, revoke, disable, list
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="boneage",
        description="Bone-age assessment from hand radiographs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_GROUPS:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
