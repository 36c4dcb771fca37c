"""services.users with in-memory fakes: roles, argon2 passwords, hashed tokens shown
once, revocation, disabling, the first-start administrator."""

from __future__ import annotations

import pytest

from core.access import token_digest
from services.users import (
    InvalidUser,
    add_user,
    authenticate,
    create_token,
    disable_user,
    ensure_admin,
    get_user,
    list_users,
    revoke_token,
    user_for_token,
)
from user_fakes import FakeUserUnitOfWork


@pytest.fixture
def uow():
    return FakeUserUnitOfWork()


def test_add_user_hashes_the_password_with_argon2(uow):
    user, password = add_user("alice", "reader", uow=uow, password="a long enough password")
    stored = uow.users.get(user.id)
    assert password == "a long enough password"
    assert stored.password_hash.startswith("$argon2id$") and password not in stored.password_hash
    assert (user.username, user.role, user.active) == ("alice", "reader", True)


def test_add_user_generates_a_password_when_none_is_given(uow):
    _user, password = add_user("bob", "submitter", uow=uow)
    assert len(password) >= 16
    assert authenticate("bob", password, uow=uow).username == "bob"


@pytest.mark.parametrize("username, role, password", [
    ("", "reader", None), ("has space", "reader", None), ("x" * 101, "reader", None),
    ("ok", "superuser", None), ("ok", "reader", "short"),
])
def test_bad_users_are_refused_and_nothing_is_stored(uow, username, role, password):
    with pytest.raises(InvalidUser):
        add_user(username, role, uow=uow, password=password)
    assert uow.users.count() == 0


def test_usernames_are_unique(uow):
    add_user("alice", "reader", uow=uow)
    with pytest.raises(InvalidUser, match="already"):
        add_user("alice", "admin", uow=uow)


def test_authenticate_refuses_wrong_password_unknown_user_and_disabled_user(uow):
    add_user("alice", "reader", uow=uow, password="the right password")
    assert authenticate("alice", "the wrong password", uow=uow) is None
    assert authenticate("nobody", "the right password", uow=uow) is None
    caller = authenticate("alice", "the right password", uow=uow)
    assert caller.role == "reader" and uow.users.get(caller.id).last_login_at is not None
    disable_user("alice", uow=uow)
    assert authenticate("alice", "the right password", uow=uow) is None
    assert get_user(caller.id, uow=uow) is None


def test_tokens_are_stored_hashed_shown_once_and_revocable(uow):
    add_user("robot", "submitter", uow=uow)
    token_id, token = create_token("robot", uow=uow, label="PACS bridge")
    stored = uow.tokens.get(token_id)
    assert token.startswith("bat_") and stored.token_hash == token_digest(token) and token not in stored.token_hash
    assert user_for_token(token, uow=uow).username == "robot"
    assert user_for_token(token + "x", uow=uow) is None
    assert user_for_token("", uow=uow) is None
    revoke_token(token_id, uow=uow)
    assert user_for_token(token, uow=uow) is None
    with pytest.raises(InvalidUser):
        revoke_token(999, uow=uow)


def test_a_disabled_users_tokens_stop_working(uow):
    add_user("robot", "submitter", uow=uow)
    _id, token = create_token("robot", uow=uow)
    disable_user("robot", uow=uow)
    assert user_for_token(token, uow=uow) is None
    with pytest.raises(InvalidUser, match="disabled"):
        create_token("robot", uow=uow)
    with pytest.raises(InvalidUser):
        create_token("nobody", uow=uow)


def test_ensure_admin_creates_one_administrator_on_first_start_only(uow):
    password = ensure_admin(uow=uow)
    assert password and authenticate("admin", password, uow=uow).role == "admin"
    assert ensure_admin(uow=uow) is None
    assert [u["username"] for u in list_users(uow=uow)] == ["admin"]
