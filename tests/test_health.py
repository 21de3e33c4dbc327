"""``/healthz``: 200 when the database and the broker answer, 503 naming what failed otherwise;
served to a load balancer that addresses the server by IP over plain HTTP."""

from __future__ import annotations

import io
import json
import socket

import pytest
from django_q.conf import Conf

from pcsms import wsgi


def wsgi_get(path: str, host: str) -> tuple[str, bytes]:
    """GET through pcsms.wsgi.application, the way gunicorn calls it."""
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status

    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    body = b"".join(wsgi.application(env, start_response))
    return answer["status"], body


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_a_healthy_server_answers_ok_with_what_it_checked(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "queued_tasks": 0,
    }


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_makes_it_unhealthy(client, monkeypatch):
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{closed_port()}/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failed" and body["database"] == "ok"
    assert body["broker"] == "failed: ConnectionError"


# The WSGI handler closes the database connection at each request's start and end, as in
# production: outside a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_a_check_by_ip_over_http_gets_the_answer_behind_the_tls_proxy(settings):
    # Production behind the proxy: https redirects and only the site's names are allowed.
    settings.ALLOWED_HOSTS = ["sms.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    status, body = wsgi_get("/healthz", "10.0.0.5")
    assert status.startswith("200") and json.loads(body)["status"] == "ok"
    # The admin on the same terms is refused: the exemption is the health check's alone.
    status, _ = wsgi_get("/admin/", "10.0.0.5")
    assert status.startswith("400")


@pytest.mark.django_db
def test_only_get_is_answered(client):
    assert client.post("/healthz").status_code == 405
