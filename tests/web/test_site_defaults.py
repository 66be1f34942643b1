"""Safe defaults (issue 29, item 6): production settings without DEBUG, a generated secret key,
the site's own error pages, failed-login limits, ``check --deploy`` clean with the documented
HTTPS variables, and log lines without client-error tracebacks or doubles."""

from __future__ import annotations

import copy
import io
import logging
import os
import stat
import subprocess
import sys
import threading

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.utils.log import configure_logging

from ser_site.secret_key import secret_key_load_or_create
from tests.conftest import ROOT

# What README's scaling table documents for a deployment behind an HTTPS proxy.
PRODUCTION_ENV = {
    "SECRET_KEY": "a-long-random-production-key-" + "x7Rq2LmZ9" * 6,
    "ALLOWED_HOSTS": "studio.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.org",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
}


def _manage(tmp_path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "SECRET_KEY", "SECURE_", "TEST_", "DJANGO_"))}
    env.update(SER_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="ser_site.settings", **(extra or {}))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_check_deploy_is_clean_with_the_documented_production_variables(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", extra=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_without_them_names_what_to_set(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    report = result.stdout + result.stderr
    assert result.returncode != 0
    for code in ("W004", "W008", "W012", "W016"):
        assert f"security.{code}" in report
    assert "security.W018" not in report  # DEBUG is off by default
    assert "security.W009" not in report  # the generated key is long and random


def test_settings_default_to_no_debug_and_a_kept_secret_key(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    first = _manage(tmp_path, "shell", "-c", code)
    assert first.returncode == 0, first.stderr
    debug, key = first.stdout.split()[-2:]  # after "N objects imported automatically"
    key_file = tmp_path / "data" / "secret-key"
    assert debug == "False" and key == key_file.read_text().strip() and len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = _manage(tmp_path, "shell", "-c", code)
    assert second.stdout.split()[-1] == key  # the same key on every start: sessions survive restarts


def test_secret_key_racing_processes_agree(tmp_path):
    path = tmp_path / "secret-key"
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(secret_key_load_or_create(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and path.read_text().strip() == keys[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret-key"]  # no temporary files left
    path.write_text("short\n")
    with pytest.raises(RuntimeError, match="no usable secret key"):
        secret_key_load_or_create(path)


@pytest.mark.django_db
def test_missing_page_is_the_sites_own_404_without_url_list(client, auth_client):
    for c in (Client(), auth_client):
        response = c.get("/no/such/page/")
        assert response.status_code == 404
        assert [t.name for t in response.templates][:2] == ["404.html", "base.html"]
        html = response.content.decode()
        assert "Page not found" in html and "urlpatterns" not in html.lower() and "URLconf" not in html


@pytest.mark.django_db
def test_forbidden_and_csrf_pages(auth_client, user, tmp_path):
    from devsupport.tiny_model import register_tiny

    version = register_tiny(tmp_path)
    response = auth_client.post(f"/models/{version.pk}/activate/")  # staff only
    assert response.status_code == 403 and "403.html" in [t.name for t in response.templates]
    assert "Not allowed" in response.content.decode()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    response = strict.post(f"/models/{version.pk}/activate/")
    assert response.status_code == 403 and "Form expired" in response.content.decode()


def test_server_error_page_renders_without_a_request_context():
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "app.css" in html and "Log out" not in html


@pytest.fixture
def login_cache():
    cache.clear()
    yield
    cache.clear()


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_failed_logins_are_limited_per_user_and_address(client, django_user_model, settings, login_cache):
    django_user_model.objects.create_user("ada", password="right-password-123")
    for _ in range(settings.SER_LOGIN_FAILURES_PER_USER):
        response = _login(client, "ada", "wrong")
        assert response.status_code == 200 and "did not match" in response.content.decode()
    blocked = _login(client, "ada", "right-password-123")  # even the right password, from this address
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
    assert _login(client, "ADA ", "wrong").status_code == 429  # the name as typed, case and spaces aside
    # Another address, or another name from this address, is not blocked.
    assert _login(Client(), "ada", "right-password-123", address="10.0.0.2").status_code == 302
    assert _login(Client(), "someone-else", "wrong").status_code == 200
    # The admin's login page goes through the same check.
    admin = Client().post("/admin/login/?next=/admin/", {"username": "ada", "password": "right-password-123"},
                          REMOTE_ADDR="10.0.0.1")
    assert admin.status_code == 200 and "_auth_user_id" not in admin.wsgi_request.session


@pytest.mark.django_db
def test_failed_logins_are_limited_per_address_over_all_names(client, settings, login_cache):
    settings.SER_LOGIN_FAILURES_PER_ADDRESS = 5
    for n in range(5):
        assert _login(client, f"name{n}", "wrong").status_code == 200
    assert _login(client, "name-new", "wrong").status_code == 429
    assert _login(client, "name-new", "wrong", address="10.0.0.9").status_code == 200


@pytest.mark.django_db
def test_a_successful_login_resets_the_count(client, django_user_model, settings, login_cache):
    django_user_model.objects.create_user("ada", password="right-password-123")
    for _ in range(settings.SER_LOGIN_FAILURES_PER_USER - 1):
        _login(client, "ada", "wrong")
    assert _login(client, "ada", "right-password-123").status_code == 302
    client.logout()
    for _ in range(settings.SER_LOGIN_FAILURES_PER_USER - 1):
        assert _login(client, "ada", "wrong").status_code == 200


@pytest.fixture
def site_logging(settings):
    """The site's LOGGING, its console writing to a buffer; the original is restored afterwards."""
    buffer = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = buffer
    configure_logging(settings.LOGGING_CONFIG, config)
    yield buffer
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


@pytest.mark.django_db
def test_a_403_is_logged_in_one_line_without_a_traceback(auth_client, tmp_path, site_logging):
    from devsupport.tiny_model import register_tiny

    version = register_tiny(tmp_path)
    assert auth_client.post(f"/models/{version.pk}/activate/").status_code == 403
    logged = site_logging.getvalue()
    assert logged.count(f"Forbidden (Permission denied): /models/{version.pk}/activate/") == 1
    assert "Traceback" not in logged


def test_a_server_error_keeps_its_traceback(site_logging):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("django.request").error("Internal Server Error: /x", exc_info=True, extra={"status_code": 500})
    assert "Traceback" in site_logging.getvalue() and "RuntimeError: boom" in site_logging.getvalue()


def test_django_log_lines_are_printed_once(settings, site_logging):
    settings.DEBUG = True  # Django's own console handler prints only under DEBUG
    logging.getLogger("django.request").warning("Not Found: /once")
    assert logging.getLogger("django").handlers == []  # only the root's handler prints
    assert site_logging.getvalue().count("Not Found: /once") == 1
