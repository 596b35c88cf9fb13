"""Security probes for the HTTP source and the alerts: credentials stay with their origin, secrets stay out of logs.

Two real HTTP servers on different ports are two origins (RFC 6454): the API, and a host that
a ``next_link`` or a redirect points to.
"""

from __future__ import annotations

import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from strata import alerting
from strata.errors import MalformedSourceError
from strata.registry.models import Dataset
from strata.sources import http as http_source

TOKEN = "s3cr3t-token-value"
KEY = "k3y-value"


class Server:
    """A JSON server that records the headers of every request and answers from ``routes``."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.seen.append({k.lower(): v for k, v in self.headers.items()})
                status, body, headers = server.routes[self.path.split("?")[0]]()
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("PROBE_TOKEN", TOKEN)
    monkeypatch.setenv("PROBE_KEY", KEY)
    other = Server({"/steal": lambda: (200, {"items": [{"id": 99}]}, None)})
    api = Server({})
    yield api, other
    api.close()
    other.close()


def _dataset(api: Server, pagination: dict | None = None) -> Dataset:
    return Dataset.model_validate(
        {
            "name": "items",
            "source": {
                "type": "http",
                "url": f"{api.url}/items",
                "auth": {"type": "bearer", "token": "${PROBE_TOKEN}"},
                "headers": {"X-Api-Key": "${PROBE_KEY}", "Accept": "application/json"},
                "records_path": "items",
                "pagination": pagination or {"type": "none"},
                "retries": {"attempts": 1},
            },
            "columns": [{"name": "id", "type": "BIGINT"}],
        }
    )


def _no_credentials(headers: dict) -> bool:
    return TOKEN not in json.dumps(headers) and KEY not in json.dumps(headers)


def test_a_cross_origin_next_link_gets_no_credentials(servers):
    api, other = servers
    api.routes["/items"] = lambda: (200, {"items": [{"id": 1}], "next": f"{other.url}/steal"}, None)
    con = duckdb.connect()
    extract = http_source.extract(con, _dataset(api, {"type": "next_link", "next_link_path": "next"}), None)
    assert extract.metadata["records"] == 2
    assert api.seen[0]["authorization"] == f"Bearer {TOKEN}" and api.seen[0]["x-api-key"] == KEY
    assert other.seen and _no_credentials(other.seen[0])
    assert other.seen[0]["accept"] == "application/json"  # plain headers still go


def test_a_cross_origin_redirect_gets_no_credentials(servers):
    api, other = servers
    api.routes["/items"] = lambda: (302, "", {"Location": f"{other.url}/steal"})
    http_source.extract(duckdb.connect(), _dataset(api), None)
    assert api.seen[0]["x-api-key"] == KEY
    assert other.seen and _no_credentials(other.seen[0])


def test_the_temporary_file_is_removed_when_a_later_page_is_malformed(servers, monkeypatch, tmp_path):
    api, _ = servers
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pages = iter([(200, {"items": [{"id": 1}], "next": "/items?p=2"}, None), (200, "{not json", None)])
    api.routes["/items"] = lambda: next(pages)
    with pytest.raises(MalformedSourceError, match="page 2"):
        http_source.extract(duckdb.connect(), _dataset(api, {"type": "next_link", "next_link_path": "next"}), None)
    assert list(tmp_path.iterdir()) == []


def test_the_alert_log_never_records_the_webhook_secret(tmp_path):
    log = tmp_path / "alerts.log"
    webhook = "http://127.0.0.1:9/services/T000/B000/WEBHOOKSECRET"  # port 9: nothing listens
    text = f"run failed: GET https://user:pw@api.example.com/x?api_key={KEY}&page=2 with Bearer {TOKEN}"
    where = alerting.send(text, {"run_id": "r1", "error": f"Authorization: {TOKEN}"}, log, webhook_url=webhook)
    assert where == str(log)
    line = log.read_text()
    for secret in ("WEBHOOKSECRET", KEY, TOKEN, "user:pw"):
        assert secret not in line, secret
    record = json.loads(line)
    assert record["webhook_error"].startswith("http://127.0.0.1:9/***")
    assert "api.example.com/x?api_key=***&page=2" in record["text"]


def test_a_link_local_address_is_never_requested(servers):
    """Cloud metadata lives on 169.254.169.254; a dataset URL or a redirect must not reach it."""
    api, _ = servers
    api.routes["/items"] = lambda: (302, "", {"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(Exception, match="link-local"):
        http_source.extract(duckdb.connect(), _dataset(api), None)
