"""OpenLineage events of real runs, received by a local HTTP server (a Marquez-compatible endpoint).

Every event is rebuilt with openlineage-python's own event and facet classes, which the project
generates from the spec's JSON Schema (``openlineage.client.generated``; the wheel ships the
classes, not the JSON files): a missing required field, a wrong type or a malformed run id,
time or URI is refused.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import pkgutil
import threading
import types
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attr
import dagster as dg
import openlineage.client.generated as generated
import pytest
from conftest import daily_file
from openlineage.client.event_v2 import RunEvent


def _facet_classes() -> dict[str, type]:
    """Every generated class by the schema URL it validates (``_schemaURL`` of a facet)."""
    found = {}
    for module in pkgutil.iter_modules(generated.__path__):
        loaded = importlib.import_module(f"{generated.__name__}.{module.name}")
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if attr.has(cls) and cls.__module__ == loaded.__name__ and "_get_schema" in vars(cls):
                found[cls._get_schema()] = cls
    return found


FACETS = _facet_classes()


def _convert(tp, value, path: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        errors = []
        for option in [a for a in typing.get_args(tp) if a is not type(None)]:
            try:
                return _convert(option, value, path)
            except (TypeError, ValueError, AssertionError) as err:
                errors.append(err)
        raise ValueError(f"{path}: {errors}")
    if origin is list:
        assert isinstance(value, list), f"{path} is not a list"
        return [_convert(typing.get_args(tp)[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        assert isinstance(value, dict), f"{path} is not an object"
        return {k: _convert(typing.get_args(tp)[1], v, f"{path}.{k}") for k, v in value.items()}
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return tp(value)
    if inspect.isclass(tp) and attr.has(tp):
        if isinstance(value, dict) and value.get("_schemaURL") in FACETS:
            tp = FACETS[value["_schemaURL"]]  # a facet: the class its schema URL names
        return rebuild(tp, value, path)
    if tp in (str, int, bool):
        assert isinstance(value, tp), f"{path}: {value!r} is not {tp.__name__}"
    return value


def rebuild(cls: type, data: dict, path: str = "event"):
    """``data`` as an instance of the generated ``cls``: raises if it breaks the spec's model."""
    assert isinstance(data, dict), f"{path} is not an object"
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.alias: _convert(hints[f.name], data[f.name], f"{path}.{f.name}")
        for f in attr.fields(cls)
        if f.init and f.name in data
    }
    return cls(**kwargs)


class Receiver(ThreadingHTTPServer):
    """A lineage endpoint on 127.0.0.1: keeps each POSTed event and its Authorization header."""

    def __init__(self):
        self.events: list[dict] = []
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.events.append(json.loads(body))
                server.auth.append(self.headers.get("Authorization"))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def runs(self, job: str) -> list[dict]:
        return [e for e in self.events if e["job"]["name"] == job]


@pytest.fixture
def receiver(monkeypatch):
    server = Receiver()
    monkeypatch.setenv("STRATA_LINEAGE_TRANSPORT", "http")
    monkeypatch.setenv("STRATA_LINEAGE_URL", server.url)
    monkeypatch.setenv("STRATA_LINEAGE_API_KEY", "lineage-key")
    yield server
    server.shutdown()


def test_a_range_run_sends_valid_events_with_lineage_checks_and_window(seeded, receiver):
    assert seeded.materialize(seeded.keys(partitioned=True), start="1995-01-10", end="1995-01-11").success
    history = [dg.AssetKey(["staging", "tpch_customer_snapshots_history"])]
    published = [k for k in seeded.keys() if k.path[0] == "published"]
    assert seeded.materialize(history + published).success

    assert receiver.events and set(receiver.auth) == {"Bearer lineage-key"}
    for event in receiver.events:
        rebuild(RunEvent, event)
    for job in ("raw.tpch_orders", "staging.stg_tpch__orders", "marts.fct_order_lines", "published.fct_order_lines"):
        runs = receiver.runs(job)
        assert [e["eventType"] for e in runs] == ["START", "COMPLETE"], job
        assert runs[0]["run"]["runId"] == runs[1]["run"]["runId"]
        assert runs[1]["run"]["facets"]["parent"]["run"]["runId"]  # the Dagster run

    fct = receiver.runs("marts.fct_order_lines")[1]
    window = fct["run"]["facets"]["nominalTime"]
    assert (window["nominalStartTime"], window["nominalEndTime"]) == ("1995-01-10T00:00:00Z", "1995-01-12T00:00:00Z")
    [output] = fct["outputs"]
    net_revenue = output["facets"]["columnLineage"]["fields"]["net_revenue"]["inputFields"]
    assert {(f["name"], f["field"]) for f in net_revenue} == {
        ("staging.stg_tpch__lineitem", "extended_price"),
        ("staging.stg_tpch__lineitem", "discount"),
    }
    assert {"net_revenue", "customer_market_segment_at_order"} <= {
        f["name"] for f in output["facets"]["schema"]["fields"]
    }
    assertions = output["facets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert any(a["assertion"].startswith("relationships_fct_order_lines_customer_key") for a in assertions)
    # rowCount is what the run wrote (the window's rows, as the spec defines it); the table's total
    # is in Strata's own facet
    rows = seeded.query("select count(*) from marts.fct_order_lines")[0][0]
    written = seeded.query(
        "select count(*) from marts.fct_order_lines where order_date >= '1995-01-10' and order_date < '1995-01-12'"
    )[0][0]
    assert 0 < written < rows
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == written
    table = output["facets"]["strata_table"]
    assert table["rowCount"] == rows and table["_producer"] and table["_schemaURL"].endswith(".json")
    assert {i["name"] for i in fct["inputs"]} >= {"staging.stg_tpch__lineitem", "marts.dim_customer_history"}

    # a raw dataset's input is its source: the landing files
    raw = receiver.runs("raw.tpch_orders")[1]
    assert raw["inputs"][0]["namespace"] == f"file://{seeded.settings.landing_dir}"
    assert raw["inputs"][0]["name"] == "tpch/orders/orders_{date}.parquet"
    assert {a["assertion"] for a in raw["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]} >= {
        "row_accounting",
        "quarantine_threshold",
        "schema",
    }
    # a SQL dataset's column lineage comes from sqlglot's parse of its SELECT
    scd2 = receiver.runs("staging.tpch_customer_snapshots_history")[1]["outputs"][0]["facets"]["columnLineage"][
        "fields"
    ]
    assert ("raw.tpch_customer_snapshots", "c_mktsegment") in {
        (f["name"], f["field"]) for f in scd2["c_mktsegment"]["inputFields"]
    }
    # a published mart reads its mart
    assert receiver.runs("published.fct_order_lines")[1]["inputs"][0]["name"] == "marts.fct_order_lines"


def test_a_failed_run_sends_fail_with_the_error(damaged_platform, receiver):
    corrupt = daily_file(damaged_platform.settings.landing_dir, "orders", "1995-01-05")
    corrupt.write_bytes(b"PAR1 not a parquet file")
    result = damaged_platform.materialize(
        [dg.AssetKey(["raw", "tpch_orders"])], partition="1995-01-05", raise_on_error=False
    )
    assert not result.success
    events = receiver.runs("raw.tpch_orders")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert str(corrupt.name) in error["message"] and error["programmingLanguage"] == "python"
    assert "Traceback" in error["stackTrace"]
    for event in events:
        rebuild(RunEvent, event)


def test_a_lineage_server_that_is_down_does_not_fail_the_run(seeded, monkeypatch):
    receiver = Receiver()
    url = receiver.url
    receiver.shutdown()
    receiver.server_close()  # nothing listens there any more
    monkeypatch.setenv("STRATA_LINEAGE_TRANSPORT", "http")
    monkeypatch.setenv("STRATA_LINEAGE_URL", url)
    result = seeded.materialize([dg.AssetKey(["raw", "tpch_region"])])
    assert result.success
    [mat] = result.get_asset_materialization_events()
    assert mat.materialization.metadata["openlineage_errors"].value >= 1


def test_the_default_transport_writes_json_lines_under_the_data_dir(seeded):
    assert seeded.materialize([dg.AssetKey(["raw", "tpch_region"])]).success
    path = seeded.settings.data_dir / "lineage" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    region = [e for e in events if e["job"]["name"] == "raw.tpch_region"]
    assert [e["eventType"] for e in region][-2:] == ["START", "COMPLETE"]
    for event in region:
        rebuild(RunEvent, event)


def test_a_run_stopped_by_a_blocking_check_sends_fail_with_its_assertions(damaged_platform, receiver):
    import duckdb

    path = daily_file(damaged_platform.settings.landing_dir, "orders", "1995-01-06")
    with duckdb.connect() as con:  # every order of the day breaks accepted_values: all quarantined
        con.execute(f"copy (select * replace ('X' as o_orderstatus) from '{path}') to '{path}.new' (format parquet)")
    path.with_name(path.name + ".new").replace(path)
    result = damaged_platform.materialize(
        [dg.AssetKey(["raw", "tpch_orders"])], partition="1995-01-06", raise_on_error=False
    )
    assert not result.success
    start, fail = receiver.runs("raw.tpch_orders")
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert "quarantine_threshold" in fail["run"]["facets"]["errorMessage"]["message"]
    assertions = {
        a["assertion"]: a["success"] for a in fail["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    }
    assert assertions["quarantine_threshold"] is False and assertions["row_accounting"] is True
    rebuild(RunEvent, fail)
