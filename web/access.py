"""Who is asking and what they may see (issue 9; web.auth enforces it on every request).

Roles (core.access): a *submitter* submits and sees only their own studies; a *reader*
sees the department's studies and records readings; an *admin* does everything
(models, datasets, training, users, audits).

The role an endpoint needs is decided here, in one place: PUBLIC_ENDPOINTS need none;
whole blueprints are admin-only (training, models, datasets, audits) except the
readings endpoints, which readers may use; a view marked `admin_required` is admin-only
wherever it lives; everything else needs a logged-in user of any role, and the views
check each study against the caller (`may_see`, `owner_filter`).
"""

from __future__ import annotations

from functools import wraps

from flask import current_app

from core.access import Role, sees_all_studies

PUBLIC_ENDPOINTS = frozenset({"healthz", "auth.login", "static", "api-docs.openapi_json"})
ADMIN_BLUEPRINTS = frozenset({"training_pages", "training_api", "audits", "audits_api", "users"})
READER_ENDPOINTS = frozenset({
    "audits.add_reading_form", "audits.import_form",
    "audits_api.list_readings", "audits_api.create_reading", "audits_api.import_readings",
})
RANK = {Role.SUBMITTER.value: 1, Role.READER.value: 2, Role.ADMIN.value: 3}


def required_role(endpoint: str) -> str:
    """The least role that may call `endpoint` (not for PUBLIC_ENDPOINTS)."""
    view = current_app.view_functions.get(endpoint)
    if getattr(view, "admin_only", False):
        return Role.ADMIN.value
    if endpoint in READER_ENDPOINTS:
        return Role.READER.value
    if endpoint.partition(".")[0] in ADMIN_BLUEPRINTS:
        return Role.ADMIN.value
    return Role.SUBMITTER.value


def role_allows(role: str, needed: str) -> bool:
    return RANK.get(str(role), 0) >= RANK[needed]


def caller():
    """The logged-in user (services.users.Caller), or None."""
    from web.auth import _caller

    return _caller()


def current_user() -> str:
    """The caller's username, recorded as who acted (activations, datasets, jobs)."""
    who = caller()
    return who.username if who is not None else "web"


def owner_filter() -> int | None:
    """None when the caller sees every study; else their user id (only their own)."""
    who = caller()
    if who is None:
        return -1  # nobody: matches no study
    return None if sees_all_studies(who.role) else who.id


def may_see(assessment) -> bool:
    """Whether the caller may see this study (a submitter: only their own)."""
    owner = owner_filter()
    return owner is None or assessment.submitted_by_id == owner


def caller_id() -> int | None:
    who = caller()
    return who.id if who is not None else None


def admin_required(view):
    """Marks an administrator-only view (web.auth.gate refuses others with 403)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, **kwargs)

    wrapper.admin_only = True
    return wrapper
