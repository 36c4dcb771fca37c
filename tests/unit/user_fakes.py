"""In-memory users and tokens for the services.users unit tests."""

from __future__ import annotations

import itertools


class FakeUsers:
    def __init__(self):
        self.rows = {}
        self._ids = itertools.count(1)

    def add(self, user):
        user.id = next(self._ids)
        self.rows[user.id] = user
        return user

    def get(self, user_id):
        return self.rows.get(user_id)

    def get_by_username(self, username):
        return next((u for u in self.rows.values() if u.username == username), None)

    def all(self):
        return sorted(self.rows.values(), key=lambda u: u.id)

    def count(self):
        return len(self.rows)


class FakeTokens:
    def __init__(self, users: FakeUsers):
        self.rows = {}
        self.users = users
        self._ids = itertools.count(1)

    def add(self, token):
        token.id = next(self._ids)
        token.user = self.users.get(token.user_id)
        self.rows[token.id] = token
        return token

    def get(self, token_id):
        return self.rows.get(token_id)

    def by_hash(self, token_hash):
        return next((t for t in self.rows.values() if t.token_hash == token_hash), None)

    def for_user(self, user_id):
        return [t for t in self.rows.values() if t.user_id == user_id]


class FakeUserUnitOfWork:
    def __init__(self):
        self.users = FakeUsers()
        self.tokens = FakeTokens(self.users)
        self.commits = 0

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def commit(self):
        self.commits += 1
