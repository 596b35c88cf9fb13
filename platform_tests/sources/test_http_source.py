"""HTTP sources against a local JSON API: pagination styles, 429 and 500 answers, a malformed
page, a slow page, the rate limit and authentication."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest
from conftest import by_value

from strata.errors import MalformedSourceError
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

RECORDS = [{"id": i, "day": f"2024-06-0{1 + i % 2}", "value": i * 1.5, "tags": ["x"] * (i % 3)} for i in range(23)]
PAGE = 5


class Api:
    """Serves RECORDS in pages and misbehaves on request."""

    def __init__(self):
        self.requests: list[tuple[float, str, dict]] = []
        self.faults: dict[tuple[str, int], list] = {}  # (style, page) -> faults still to inject
        self.token = "s3cret"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parsed = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                api.requests.append((time.monotonic(), parsed.path, q))
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._send(401, {"error": "unauthorized"})
                style = parsed.path.strip("/")
                records = [r for r in RECORDS if "day" not in q or r["day"] == q["day"]]
                if style == "page":
                    page = int(q.get("page", 1))
                    chunk = records[(page - 1) * PAGE : page * PAGE]
                    return self._fault_or(style, page, {"data": {"items": chunk}})
                if style == "offset":
                    offset, limit = int(q["offset"]), int(q["limit"])
                    return self._fault_or(style, offset // limit + 1, {"items": records[offset : offset + limit]})
                if style == "cursor":
                    start = int(q.get("cursor", 0))
                    nxt = start + PAGE if start + PAGE < len(records) else None
                    return self._fault_or(
                        style,
                        start // PAGE + 1,
                        {"items": records[start : start + PAGE], "meta": {"next": nxt}},
                    )
                if style == "link":
                    page = int(q.get("p", 1))
                    more = page * PAGE < len(records)
                    body = {
                        "items": records[(page - 1) * PAGE : page * PAGE],
                        "links": {"next": f"/link?p={page + 1}" if more else None},
                    }
                    return self._fault_or(style, page, body)
                return self._send(404, {})

            def _fault_or(self, style, page, body):
                faults = api.faults.get((style, page)) or []
                fault = faults.pop(0) if faults else None
                if fault == 429:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
                if fault == 500:
                    return self._send(500, {"error": "boom"})
                if fault == "malformed":
                    return self._raw(200, b'{"items": [{"id": 1}, ')
                if fault == "not-a-list":
                    return self._send(200, {"items": {"id": 1}})
                if fault == "slow":
                    time.sleep(1.5)
                return self._send(200, body)

            def _send(self, status, body, headers=None):
                self._raw(status, json.dumps(body).encode(), headers)

            def _raw(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def close(self):
        self.server.shutdown()


@pytest.fixture
def api(monkeypatch):
    server = Api()
    monkeypatch.setenv("SHOP_API_TOKEN", server.token)
    yield server
    server.close()


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as c:
        yield c


PAGINATIONS = {
    "page": ({"type": "page", "page_param": "page"}, "data.items"),
    "offset": ({"type": "offset", "page_size": PAGE}, "items"),
    "cursor": ({"type": "cursor", "cursor_param": "cursor", "cursor_path": "meta.next"}, "items"),
    "link": ({"type": "next_link", "next_link_path": "links.next"}, "items"),
}


def dataset(api: Api, style: str, **source) -> Dataset:
    pagination, path = PAGINATIONS[style]
    return Dataset.model_validate(
        {
            "name": "readings",
            "source": {
                "type": "http",
                "url": f"{api.url}/{style}",
                "records_path": path,
                "pagination": pagination,
                "auth": {"type": "bearer", "token": "${SHOP_API_TOKEN}"},
                "retries": {"attempts": 4, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2},
                "timeout_seconds": 1.0,
                **source,
            },
            "columns": [
                {"name": "id", "type": "INTEGER", "nullable": False},
                {"name": "value", "type": "DOUBLE"},
            ],
        }
    )


@pytest.mark.parametrize("style", PAGINATIONS)
def test_every_pagination_style_reads_every_record(api, con, style):
    report = load_dataset(con, dataset(api, style), None, "r1")
    assert report.rows_written == len(RECORDS)
    assert con.execute("select count(distinct id), sum(value) from raw.readings").fetchall() == [
        (23, sum(r["value"] for r in RECORDS))
    ]
    pages = con.execute("select count(distinct _source_page) from raw.readings").fetchall()[0][0]
    assert pages == 5


def test_429_and_500_are_retried_with_backoff(api, con):
    api.faults = {("page", 2): [429, 429], ("page", 3): [500]}
    report = load_dataset(con, dataset(api, "page"), None, "r1")
    assert report.rows_written == 23 and report.metadata["retries"] == 3
    pages_asked = [q.get("page") for _, _, q in api.requests]
    assert pages_asked == ["1", "2", "2", "2", "3", "3", "4", "5", "6"]


def test_a_slow_page_times_out_and_is_retried(api, con):
    api.faults = {("cursor", 2): ["slow"]}
    report = load_dataset(con, dataset(api, "cursor"), None, "r1")
    assert report.rows_written == 23 and report.metadata["retries"] == 1


def test_a_malformed_page_fails_naming_the_page_and_nothing_is_written(api, con):
    load_dataset(con, dataset(api, "page"), None, "r1")
    api.faults = {("page", 3): ["malformed"]}
    with pytest.raises(
        MalformedSourceError, match=r"page 3 \(http://127\.0\.0\.1:\d+/page\?page=3\) is not valid JSON"
    ):
        load_dataset(con, dataset(api, "page"), None, "r2")
    assert con.execute("select distinct _run_id from raw.readings").fetchall() == [("r1",)]


def test_records_path_that_is_not_a_list(api, con):
    api.faults = {("offset", 1): ["not-a-list"]}
    with pytest.raises(MalformedSourceError, match="'items' is not a list of objects"):
        load_dataset(con, dataset(api, "offset"), None, "r1")


def test_server_errors_that_persist_fail_after_the_retries(api, con):
    api.faults = {("page", 1): [500] * 10}
    with pytest.raises(Exception, match="HTTP 500"):
        load_dataset(con, dataset(api, "page"), None, "r1")
    assert len(api.requests) == 4


def test_rate_limit_spaces_requests(api, con):
    load_dataset(con, dataset(api, "page", rate_limit_per_second=20), None, "r1")
    times = [t for t, _, _ in api.requests]
    # the limiter spaces the sends 0.05 s apart; the server sees them with its own scheduling
    # jitter on a loaded machine, so judge the span of all six rather than the closest pair
    assert len(times) == 6 and times[-1] - times[0] >= 5 * 0.05 * 0.8


def test_partition_window_fills_params(api, con):
    ds = Dataset.model_validate(
        {
            **dataset(api, "page").model_dump(exclude_none=True),
            "source": {
                **dataset(api, "page").source.model_dump(exclude_none=True),
                "params": {"day": "{date}"},
            },
            "partitioning": {"column": "day", "start": "2024-06-01"},
            "columns": [{"name": "id", "type": "INTEGER"}, {"name": "day", "type": "DATE"}],
        }
    )
    report = load_dataset(
        con, ds, None, "r1", PartitionWindow.from_dates("daily", "UTC", date(2024, 6, 2), date(2024, 6, 3))
    )
    assert by_value(report.rows_by_partition) == {date(2024, 6, 2): 11}


def test_wrong_token_is_not_retried_and_fails(api, con, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", "wrong")
    with pytest.raises(Exception, match="401"):
        load_dataset(con, dataset(api, "page"), None, "r1")
    assert len(api.requests) == 1


def registry_dir(tmp_path, api: Api, attempts: int):
    """A registry with one HTTP dataset whose own retries are ``attempts`` (1 = none)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "readings.yaml").write_text(
        f"""name: readings
source:
  type: http
  url: {api.url}/page
  records_path: data.items
  pagination: {{type: page, page_param: page}}
  auth: {{type: bearer, token: "${{SHOP_API_TOKEN}}"}}
  retries: {{attempts: {attempts}}}
  timeout_seconds: 2
columns:
  - {{name: id, type: INTEGER, nullable: false}}
  - {{name: value, type: DOUBLE}}
"""
    )
    return config


def test_dagster_retries_a_transient_source_error_with_backoff_and_jitter(api, monkeypatch, tmp_path, tpch_landing):
    """The source gives up at once (attempts: 1); the step's RetryPolicy runs it again until the
    API recovers, and the re-run replaces, so the table holds each record once."""
    import dagster as dg
    from conftest import Platform, make_settings, strata_instance

    api.faults = {("page", 2): [500, 500]}
    with strata_instance() as instance:
        platform = Platform(
            make_settings(monkeypatch, tmp_path / "data", tpch_landing), instance, [registry_dir(tmp_path, api, 1)]
        )
        key = dg.AssetKey(["raw", "readings"])
        result = platform.materialize([key])
        assert result.success
        restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
        assert len(restarts) == 2
        assert platform.query("select count(*), count(distinct id) from raw.readings") == [(23, 23)]


def test_a_malformed_page_is_not_retried_by_dagster(api, monkeypatch, tmp_path, tpch_landing):
    import dagster as dg
    from conftest import Platform, make_settings, strata_instance

    api.faults = {("page", 2): ["malformed"] * 5}
    with strata_instance() as instance:
        platform = Platform(
            make_settings(monkeypatch, tmp_path / "data", tpch_landing), instance, [registry_dir(tmp_path, api, 1)]
        )
        result = platform.materialize([dg.AssetKey(["raw", "readings"])], raise_on_error=False)
        assert not result.success
        assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "page 2" in failure.event_specific_data.error.message
