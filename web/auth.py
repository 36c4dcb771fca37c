"""Access control for the web app (issue 9): who is asking and may they.

- Web login with sessions (Flask-Login; argon2 password hashes in services.users) and
  API tokens sent as `Authorization: Bearer <token>` (stored hashed, revocable).
- One gate before every request (`gate`): nothing is open anonymously except PUBLIC
  (health check, login page, static files, the OpenAPI document); the role each endpoint
  needs comes from web.access.required_role; per-study checks are in the views
  (web.access.may_see / owner_filter).
- CSRF (Flask-WTF) on every request authenticated by the session cookie that changes
  something; bearer-token requests are exempt (a browser never adds that header itself).
- Cookie flags, security headers (CSP without inline scripts or styles), rate limits on
  login and submission (Flask-Limiter; Redis storage when the broker is Redis).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, g, jsonify, redirect, render_template, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from core.access import Role
from core.settings import Settings
from db.session import DATABASE_UNAVAILABLE
from services.users import Caller, authenticate, get_user, user_for_token
from web.access import PUBLIC_ENDPOINTS, required_role, role_allows

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SUBMIT_ENDPOINTS = ("pages.create", "api.create_assessment")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class SessionUser(UserMixin):
    """A services.users.Caller as Flask-Login wants it."""

    def __init__(self, caller: Caller):
        self.caller = caller
        self.id = caller.id
        self.username = caller.username
        self.role = caller.role

    def get_id(self) -> str:
        return str(self.caller.id)


def init_auth(app: Flask, settings: Settings) -> None:
    """Called by the app factory after the blueprints are registered."""
    from web.dependencies import deps

    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="boneage_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in gate(), for session-authenticated requests only
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session's lifetime
        WTF_CSRF_SSL_STRICT=settings.secure_cookies,
    )
    csrf.init_app(app)

    manager = LoginManager(app)
    manager.session_protection = "basic"

    @manager.user_loader
    def load_user(user_id: str):
        if g.get("auth_database_down") or not user_id.isdigit():
            return None
        caller = _looked_up(lambda: get_user(int(user_id), uow=deps().uow))
        return SessionUser(caller) if caller else None

    @manager.request_loader
    def load_bearer(req):
        header = req.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or g.get("auth_database_down"):
            return None
        caller = _looked_up(lambda: user_for_token(token.strip(), uow=deps().uow))
        if caller is None:
            return None
        g.auth_bearer = True
        return SessionUser(caller)

    limiter = _limiter(app, settings)
    app.extensions["boneage_limiter"] = limiter
    app.register_blueprint(bp)
    login_view = app.view_functions["auth.login"]
    app.view_functions["auth.login"] = limiter.limit(
        lambda: settings.login_rate_limit, key_func=get_remote_address, methods=["POST"],
        error_message="Too many login attempts; wait a minute and try again.")(login_view)
    for endpoint in SUBMIT_ENDPOINTS:
        if endpoint in app.view_functions:
            app.view_functions[endpoint] = limiter.limit(
                lambda: settings.submit_rate_limit, key_func=_user_or_address, methods=["POST"],
                error_message="Too many submissions; wait a minute and try again.")(app.view_functions[endpoint])

    app.before_request(gate)
    app.after_request(security_headers)
    _document_access(app)

    @app.context_processor
    def _caller_in_templates():
        caller = _caller()
        return {"caller": caller, "caller_is_admin": bool(caller and caller.role == Role.ADMIN),
                "caller_records_readings": bool(caller and caller.role in (Role.READER, Role.ADMIN))}


def gate():
    """Before every request: authenticated, the role the endpoint needs, CSRF."""
    endpoint = request.endpoint
    if endpoint is None:  # no route: the 404/405 handlers answer, revealing nothing
        return None
    if endpoint in PUBLIC_ENDPOINTS:
        if endpoint == "auth.login" and request.method not in SAFE_METHODS:
            csrf.protect()
        return None
    if not current_user.is_authenticated:
        return _unauthenticated()
    if request.method not in SAFE_METHODS and not g.get("auth_bearer"):
        csrf.protect()
    if not role_allows(current_user.role, required_role(endpoint)):
        abort(403, description="Your account does not have access to this.")
    return None


def _unauthenticated():
    if request.path.startswith("/api/"):
        response = jsonify(error="Authentication required: send 'Authorization: Bearer <token>' "
                                 "(`boneage users token NAME` creates one).")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="boneage"'
        return response
    if request.method in SAFE_METHODS:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(401, description="Log in first.")


def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint not in PUBLIC_ENDPOINTS:
        # A study's pages and images are for the caller only: never kept by a shared cache.
        if response.mimetype in ("text/html", "application/json"):
            response.headers.setdefault("Cache-Control", "private, no-store")
        elif response.cache_control.public:
            response.cache_control.public = False
            response.cache_control.private = True
        response.vary.add("Authorization")
        response.vary.add("Cookie")
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    from web.dependencies import deps

    error = None
    next_url = _safe_next(request.values.get("next"))
    if request.method == "POST":
        caller = authenticate(request.form.get("username", ""), request.form.get("password", ""), uow=deps().uow)
        if caller is not None:
            login_user(SessionUser(caller))
            return redirect(next_url or url_for("pages.index"), code=303)
        error = "Unknown user or wrong password."
    status = 401 if error else 200
    return render_template("login.html", error=error, next=next_url or "",
                           username=request.form.get("username", "")), status


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.login"), code=303)


def _looked_up(lookup):
    """Run a user lookup; when the database is down, remember it (so that rendering the
    503 page does not try again) and let the 503 handler answer."""
    try:
        return lookup()
    except DATABASE_UNAVAILABLE:
        g.auth_database_down = True
        raise


def _caller() -> Caller | None:
    try:
        return current_user.caller if current_user.is_authenticated else None
    except (AttributeError, RuntimeError):
        return None


def _user_or_address() -> str:
    caller = _caller()
    return f"user:{caller.id}" if caller else get_remote_address()


def _safe_next(value: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no '//'): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


def _limiter(app: Flask, settings: Settings) -> Limiter:
    storage = settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) else "memory://"
    # One namespace per database, so two deployments (or two tests) sharing a Redis do
    # not share counters.
    prefix = "boneage-limits:" + hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
    return Limiter(
        key_func=get_remote_address, app=app, storage_uri=storage, key_prefix=prefix,
        swallow_errors=True, in_memory_fallback_enabled=True, headers_enabled=True,
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2} if storage != "memory://" else {},
    )


def _secret_key(settings: Settings) -> str:
    """BONEAGE_SECRET_KEY, or a random key kept in the var directory (shared by the web
    processes of one machine, stable across restarts)."""
    configured = os.environ.get("BONEAGE_SECRET_KEY")
    if configured:
        return configured
    path = settings.var_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    temporary = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    try:
        os.link(temporary, path)  # the first process to get here wins; the others read its key
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        temporary.unlink()
    return key


def _document_access(app: Flask) -> None:
    """The OpenAPI document says how to authenticate (a bearer token) and documents the
    401 and 403 of every operation, and the 429 of a submission."""
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    spec = api.spec
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "An API token from `boneage users token NAME` (shown once, revocable)."})
    spec.options["security"] = [{"bearerAuth": []}]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    extra = {
        "401": {"description": "No valid bearer token (or session).", "content": error,
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
        "403": {"description": "Your role may not do this.", "content": error},
    }
    limited = {"429": {"description": "Too many requests; wait and try again.", "content": error}}
    for path, operations in spec._paths.items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].update(extra)
            if operation.get("operationId") == "createAssessment":
                operation["responses"].update(limited)

