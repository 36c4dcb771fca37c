"""User commands: `boneage users add|token|revoke|disable|list` (access control, issue 9)."""

from __future__ import annotations

import argparse
import getpass

from core.access import ROLE_VALUES
from core.settings import Settings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="user accounts and API tokens")
    commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = commands.add_parser("add", help="create a user; prints a generated password unless --password-prompt")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLE_VALUES, default="submitter")
    add.add_argument("--password-prompt", action="store_true", help="ask for the password instead of generating one")
    add.set_defaults(handler=add_command)

    token = commands.add_parser("token", help="create an API token for a user (shown once; send it as a bearer token)")
    token.add_argument("username")
    token.add_argument("--label", help="what the token is for, e.g. 'PACS bridge'")
    token.set_defaults(handler=token_command)

    revoke = commands.add_parser("revoke", help="revoke an API token by its id")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(handler=revoke_command)

    disable = commands.add_parser("disable", help="disable a user: their sessions and tokens stop working")
    disable.add_argument("username")
    disable.set_defaults(handler=disable_command)

    commands.add_parser("list", help="list users").set_defaults(handler=list_command)


def _uow():
    from db.session import unit_of_work_factory

    return unit_of_work_factory(Settings.from_env().database_url)


def add_command(args) -> int:
    from services.users import add_user

    password = None
    if args.password_prompt:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ")
            return 2
    user, password = add_user(args.username, args.role, uow=_uow(), password=password)
    print(f"created user {user.username} (role {user.role})")
    if not args.password_prompt:
        print(f"password: {password}")
    return 0


def token_command(args) -> int:
    from services.users import create_token

    token_id, token = create_token(args.username, uow=_uow(), label=args.label)
    print(f"token {token_id} for {args.username} (shown only now; send it as 'Authorization: Bearer <token>'):")
    print(token)
    return 0


def revoke_command(args) -> int:
    from services.users import revoke_token

    revoke_token(args.token_id, uow=_uow())
    print(f"revoked token {args.token_id}")
    return 0


def disable_command(args) -> int:
    from services.users import disable_user

    disable_user(args.username, uow=_uow())
    print(f"disabled user {args.username}")
    return 0


def list_command(_args) -> int:
    from services.users import list_users

    rows = list_users(uow=_uow())
    print(f"{'id':>4}  {'username':<24} {'role':<10} {'active':<7} {'tokens':>6}  last login")
    for row in rows:
        last = row["last_login_at"].strftime("%Y-%m-%d %H:%M") if row["last_login_at"] else "-"
        print(f"{row['id']:>4}  {row['username']:<24} {row['role']:<10} {'yes' if row['active'] else 'no':<7} "
              f"{row['tokens']:>6}  {last}")
    return 0
