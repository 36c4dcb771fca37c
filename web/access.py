"""Who is asking, and the slot for the access-control work: training, dataset
registration and promotion are administrator actions. Until accounts exist,
`admin_required` lets every request through and `current_user` names the caller from
the reverse proxy's X-Remote-User header (or "web")."""

from __future__ import annotations

from functools import wraps

from flask import request


def current_user() -> str:
    name = (request.headers.get("X-Remote-User") or "").strip()
    return name[:100] or "web"


def admin_required(view):
    """Marks an administrator-only view; the access-control issue makes it check."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, **kwargs)

    wrapper.admin_only = True
    return wrapper
