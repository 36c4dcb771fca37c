"""The web app: a Flask app factory with two blueprints (pages, api).

It queues work by task name through a Celery client and never imports torch or
the model code, so it starts fast and stays small.

    gunicorn "web:create_app()"
"""

from __future__ import annotations

from flask import Flask, jsonify
from sqlalchemy import text

from core.settings import Settings
from db.files import open_file_store
from db.session import get_engine, unit_of_work_factory
from services.queue import CeleryTaskQueue, make_celery
from web.dependencies import Dependencies


def celery_init_app(app: Flask, settings: Settings):
    """The Flask docs' Celery pattern: the app's Celery client in app.extensions."""
    celery = make_celery(settings, main=app.name)
    app.extensions["celery"] = celery
    return celery


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.json.sort_keys = False
    celery = celery_init_app(app, settings)
    app.extensions["boneage"] = Dependencies(
        settings=settings,
        uow=unit_of_work_factory(settings.database_url),
        files=open_file_store(settings),
        queue=CeleryTaskQueue(celery, settings),
    )

    from web import api, audits, audits_api, growth_chart_api, pages, training_api, training_pages
    from web.errors import register_error_handlers
    from web.openapi import init_api

    app.register_blueprint(pages.bp)
    app.register_blueprint(training_pages.bp)
    app.register_blueprint(audits.bp)
    api_ext = init_api(app)
    api_ext.register_blueprint(api.bp)
    api_ext.register_blueprint(training_api.bp)
    api_ext.register_blueprint(audits_api.bp)
    api_ext.register_blueprint(growth_chart_api.bp)
    register_error_handlers(app)
    from web.auth import init_auth

    init_auth(app, settings)  # login, tokens, roles, CSRF, headers, rate limits (issue 9)

    @app.get("/healthz")
    def healthz():
        with get_engine(settings.database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app
