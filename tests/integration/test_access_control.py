"""Access control (issue 9), over every endpoint of the app's url_map × every role, so a
new endpoint cannot be forgotten: nothing is open anonymously but the allowed ones; the
admin-only and reader endpoints refuse lesser roles; a submitter sees only their own
studies, by list, page, API, image and heatmap, however the id is guessed; CSRF, cookie
flags, security headers, rate limits, revoked tokens and disabled users."""

from __future__ import annotations

import io
import re

import pytest

import migrations
from db.session import unit_of_work_factory
from helpers import api_token, auth_header, make_png, make_settings, make_user
from services.users import disable_user, revoke_token
from web import create_app

# What may be reached without logging in; anything else added to the app must need a login.
PUBLIC = {"healthz", "auth.login", "static", "api-docs.openapi_json"}
# What each role may not do (the test's own statement of the policy, not web.access's).
READER_ENDPOINTS = {"audits.add_reading_form", "audits.import_form", "audits_api.list_readings",
                    "audits_api.create_reading", "audits_api.import_readings"}
ADMIN_BLUEPRINTS = ("training_pages.", "training_api.", "audits.", "audits_api.")
ROLES = ("submitter", "reader", "admin")


def needed_role(endpoint: str) -> str:
    if endpoint in READER_ENDPOINTS:
        return "reader"
    if endpoint.startswith(ADMIN_BLUEPRINTS):
        return "admin"
    return "submitter"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("access"))
    migrations.upgrade(settings.database_url)
    app = create_app(settings)
    tokens = {role: api_token(settings, role, username=role) for role in ROLES}
    tokens["other"] = api_token(settings, "submitter", username="other")
    ids = {}
    for who in ("submitter", "other"):
        response = app.test_client().post(
            "/api/v1/assessments", headers=auth_header(tokens[who]), content_type="multipart/form-data",
            data={"image": (io.BytesIO(make_png(seed=len(ids))), "hand.png"), "sex": "F"})
        assert response.status_code == 202, response.get_data(as_text=True)
        ids[who] = response.get_json()["id"]
    return settings, app, tokens, ids


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _url(rule, ids) -> str:
    values = {}
    for argument in rule.arguments:
        values[argument] = {"assessment_id": ids["submitter"], "filename": "style.css"}.get(argument, "0" * 32)
    path = rule.rule
    for name, value in values.items():
        path = re.sub(r"<(?:[a-z]+:)?%s>" % name, value, path)
    return path


def _routes_of(world):
    return [(rule.endpoint, method, _url(rule, world[3])) for rule, method in _routes(world[1])]


def test_only_the_allowed_endpoints_are_reachable_anonymously(world):
    _settings, app, _tokens, _ids = world
    client = app.test_client()
    open_ = set()
    for endpoint, method, url in _routes_of(world):
        response = client.open(url, method=method)
        if endpoint in PUBLIC:
            assert response.status_code < 500, (endpoint, response.status_code)
            continue
        if response.status_code == 401:
            if url.startswith("/api/"):
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            continue
        if response.status_code == 302 and "/login" in response.headers["Location"]:
            continue
        open_.add(f"{method} {url} ({endpoint}) -> {response.status_code}")
    assert not open_, "reachable without logging in:\n" + "\n".join(sorted(open_))
    assert PUBLIC <= {rule.endpoint for rule in app.url_map.iter_rules()}


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_for_every_role(world, role):
    _settings, app, tokens, _ids = world
    client = app.test_client()
    rank = {r: i for i, r in enumerate(ROLES)}
    wrong = []
    for endpoint, method, url in _routes_of(world):
        if endpoint in PUBLIC or endpoint == "auth.logout":
            continue
        response = client.open(url, method=method, headers=auth_header(tokens[role]))
        allowed = rank[role] >= rank[needed_role(endpoint)]
        if response.status_code >= 500 or response.status_code == 401:
            wrong.append(f"{method} {url} -> {response.status_code}")
        elif allowed and response.status_code == 403:
            wrong.append(f"{method} {url}: refused to {role}")
        elif not allowed and response.status_code != 403:
            wrong.append(f"{method} {url}: {role} got {response.status_code}, not 403")
    assert not wrong, "\n".join(wrong)


ASSESSMENT_URLS = ("/api/v1/assessments/{id}", "/api/v1/assessments/{id}/image.png",
                   "/api/v1/assessments/{id}/heatmap.png", "/assessments/{id}")


@pytest.mark.parametrize("template", ASSESSMENT_URLS)
def test_a_submitter_cannot_see_another_submitters_study(world, template):
    _settings, app, tokens, ids = world
    client = app.test_client()
    theirs = client.get(template.format(id=ids["other"]), headers=auth_header(tokens["submitter"]))
    assert theirs.status_code == 404  # as if it did not exist: nothing to learn by walking ids
    assert ids["other"] not in theirs.get_data(as_text=True) or template.startswith("/api/v1/assessments/{id}")
    own = client.get(template.format(id=ids["submitter"]), headers=auth_header(tokens["submitter"]))
    assert own.status_code in (200, 404) and (own.status_code == 200 or "heatmap" in template)
    for role in ("reader", "admin"):  # the department's studies
        seen = client.get(template.format(id=ids["other"]), headers=auth_header(tokens[role]))
        assert seen.status_code == own.status_code


def test_lists_show_a_submitter_only_their_own_studies(world):
    _settings, app, tokens, ids = world
    client = app.test_client()
    listed = client.get("/api/v1/assessments", headers=auth_header(tokens["submitter"])).get_json()
    assert [a["id"] for a in listed["assessments"]] == [ids["submitter"]]
    page = client.get("/assessments", headers=auth_header(tokens["submitter"])).get_data(as_text=True)
    assert ids["submitter"] in page and ids["other"] not in page
    everything = client.get("/api/v1/assessments", headers=auth_header(tokens["reader"])).get_json()
    assert {a["id"] for a in everything["assessments"]} == set(ids.values())


def _login(client, username, password):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return response, token


def test_web_login_session_and_csrf_on_every_form(world):
    settings, app, _tokens, _ids = world
    username, password = make_user(settings, "submitter")
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": password}).status_code == 400  # no token
    response, token = _login(client, username, "wrong password!")
    assert response.status_code == 401 and "wrong password" in response.get_data(as_text=True)
    response, token = _login(client, username, password)
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/").status_code == 200
    form = {"sex": "F", "image": (io.BytesIO(make_png()), "hand.png")}
    refused = client.post("/assessments", data=form, content_type="multipart/form-data")
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    form = {"sex": "F", "image": (io.BytesIO(make_png()), "hand.png"), "csrf_token": token}
    assert client.post("/assessments", data=form, content_type="multipart/form-data").status_code == 303
    # The API through the session cookie needs the token too (the X-CSRFToken header).
    api = {"sex": "F", "image": (io.BytesIO(make_png()), "hand.png")}
    assert client.post("/api/v1/assessments", data=api, content_type="multipart/form-data").status_code == 400
    api = {"sex": "F", "image": (io.BytesIO(make_png()), "hand.png")}
    assert client.post("/api/v1/assessments", data=api, content_type="multipart/form-data",
                       headers={"X-CSRFToken": token}).status_code == 202
    # Every POST form of every page carries the token.
    for page in ("/",):
        html = client.get(page).get_data(as_text=True)
        for form_html in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S):
            assert 'name="csrf_token"' in form_html
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302


def test_every_post_form_in_the_templates_carries_the_csrf_token():
    from pathlib import Path

    import web

    missing = []
    for template in (Path(web.__file__).parent / "templates").glob("*.html"):
        for form_html in re.findall(r"<form[^>]*method=\"post\".*?</form>", template.read_text(), flags=re.S):
            if "csrf_token()" not in form_html:
                missing.append(template.name)
    assert not missing, missing


def test_no_open_redirect_after_login(world):
    settings, app, _tokens, _ids = world
    username, password = make_user(settings, "reader")
    client = app.test_client()
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                           "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


def test_security_headers(world):
    _settings, app, tokens, _ids = world
    client = app.test_client()
    for url in ("/login", "/healthz", "/api/v1/openapi.json"):
        headers = client.get(url).headers
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_secure_cookies_when_configured(tmp_path):
    settings = make_settings(tmp_path, BONEAGE_SECURE_COOKIES="1")
    migrations.upgrade(settings.database_url)
    username, password = make_user(settings, "submitter")
    client = create_app(settings).test_client()
    response, _token = _login(client, username, password)
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_and_submission_are_rate_limited(tmp_path):
    settings = make_settings(tmp_path, BONEAGE_LOGIN_RATE_LIMIT="3 per minute", BONEAGE_SUBMIT_RATE_LIMIT="2 per minute")
    migrations.upgrade(settings.database_url)
    app = create_app(settings)
    client = app.test_client()
    statuses = [_login(client, "nobody", "not a password")[0].status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    token = api_token(settings, "submitter")
    statuses = [client.post("/api/v1/assessments", headers=auth_header(token), content_type="multipart/form-data",
                            data={"image": (io.BytesIO(make_png(seed=i)), "hand.png"), "sex": "M"}).status_code
                for i in range(3)]
    assert statuses == [202, 202, 429]
    other = api_token(settings, "submitter")  # counted per user
    assert client.get("/api/v1/assessments", headers=auth_header(other)).status_code == 200


def test_revoked_tokens_and_disabled_users_are_refused(world):
    settings, app, _tokens, _ids = world
    uow = unit_of_work_factory(settings.database_url)
    username, password = make_user(settings, "reader")
    from services.users import create_token

    token_id, token = create_token(username, uow=uow)
    client = app.test_client()
    assert client.get("/api/v1/assessments", headers=auth_header(token)).status_code == 200
    revoke_token(token_id, uow=uow)
    assert client.get("/api/v1/assessments", headers=auth_header(token)).status_code == 401
    assert client.get("/api/v1/assessments", headers=auth_header("bat_made-up")).status_code == 401
    _token_id, token = create_token(username, uow=uow)
    browser = app.test_client()
    assert _login(browser, username, password)[0].status_code == 303
    disable_user(username, uow=uow)
    assert client.get("/api/v1/assessments", headers=auth_header(token)).status_code == 401
    assert browser.get("/assessments").status_code == 302  # the session ends too


def test_a_studys_pages_and_images_are_never_kept_by_a_shared_cache(world):
    _settings, app, tokens, ids = world
    client = app.test_client()
    for url in (f"/api/v1/assessments/{ids['submitter']}/image.png", f"/assessments/{ids['submitter']}",
                f"/api/v1/assessments/{ids['submitter']}"):
        response = client.get(url, headers=auth_header(tokens["submitter"]))
        assert response.status_code == 200
        assert "private" in response.headers["Cache-Control"] and "public" not in response.headers["Cache-Control"]
