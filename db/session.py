"""Engines, sessions and the unit of work.

One engine per database URL per process. Forked worker processes must not share
the parent's pooled connections: the worker calls dispose_engines() in
worker_process_init.
"""

from __future__ import annotations

import threading
from typing import Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.audit_repository import AuditRepository, ReadingRepository
from db.repository import AssessmentRepository, ModelVersionRepository
from db.training_repository import ActivationRepository, DatasetRepository, TrainingJobRepository
from db.user_repository import TokenRepository, UserRepository

# What a query raises while the database cannot be reached (PostgreSQL restarting, a
# dropped connection, SQLite locked past its busy timeout): a moment's outage, not a bug.
# The web answers 503 with Retry-After; the recovery sweep runs the jobs it interrupted.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _engines[url] = engine
        return engine


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the web read while the worker writes; FKs are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def dispose_engines() -> None:
    """Drop pooled connections inherited from a parent process (call after fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


class UnitOfWork:
    """A transaction with its repositories; nothing is saved unless commit() is called.

        with UnitOfWork(factory) as uow:
            uow.assessments.add(...)
            uow.commit()
    """

    def __init__(self, factory: sessionmaker[Session]):
        self._factory = factory

    def __enter__(self) -> "UnitOfWork":
        self.session = self._factory()
        self.assessments = AssessmentRepository(self.session)
        self.models = ModelVersionRepository(self.session)
        self.readings = ReadingRepository(self.session)
        self.audits = AuditRepository(self.session)
        self.datasets = DatasetRepository(self.session)
        self.training_jobs = TrainingJobRepository(self.session)
        self.activations = ActivationRepository(self.session)
        self.users = UserRepository(self.session)
        self.tokens = TokenRepository(self.session)
        return self

    def __exit__(self, *exc_info) -> None:
        # close() rolls back anything not committed and detaches the objects without
        # expiring them, so what was read stays readable after the block.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()


UnitOfWorkFactory = Callable[[], UnitOfWork]


def unit_of_work_factory(url: str) -> UnitOfWorkFactory:
    factory = session_factory(url)
    return lambda: UnitOfWork(factory)
