"""Security probes: SQL from the registry cannot reach the host, the environment, settings or other databases.

Each probe is an analyst's file that tries one way out. Validation must refuse it with
``file:line:col``; if it got past validation, the run must refuse it too
(:func:`strata.registry.sql.sandboxed`), and the sandboxed connection refuses the raw text
(:func:`strata.warehouse.sandbox`). Nothing from the host may land in the warehouse.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import duckdb
import pytest

from strata import warehouse
from strata.loading import build_derived
from strata.registry.loader import load_registry
from strata.registry.models import Dataset
from strata.registry.sql import CHECK_PLACEHOLDERS, UnsafeSqlError, sandboxed, with_placeholders

DBT_MODELS = {"marts.fct_order_lines", "staging.stg_tpch__orders"}

ORDERS = """\
name: orders
layer: raw
source: {type: files, format: csv, path: orders.csv}
columns:
  - {name: order_id, type: BIGINT}
  - {name: amount, type: DOUBLE}
"""

#: (probe, SELECT, the refusal's message must contain this). The SELECT is the file's line 3.
SELECT_PROBES = [
    ("read_text", "select content from read_text('/etc/hostname')", "table function 'read_text'"),
    ("environ", "select content from read_text('/proc/self/environ')", "table function 'read_text'"),
    ("read_csv", "select * from read_csv('/etc/passwd')", "table function 'read_csv'"),
    ("read_json", "select * from read_json('/etc/x.json')", "table function 'read_json'"),
    ("read_parquet", "select * from read_parquet('/tmp/*.parquet')", "table function 'read_parquet'"),
    ("read_blob", "select * from read_blob('/etc/shadow')", "table function 'read_blob'"),
    ("glob", "select * from glob('/root/*')", "table function 'glob'"),
    ("sniff_csv", "select * from sniff_csv('/etc/passwd')", "table function 'sniff_csv'"),
    ("settings", "select * from duckdb_settings()", "table function 'duckdb_settings'"),
    ("databases", "select * from pragma_database_list()", "table function 'pragma_database_list'"),
    ("current_setting", "select current_setting('home_directory') as h", "function 'current_setting'"),
    (
        "cte",
        "with o as (select * from orders), f as (select content from read_text('/etc/hostname')) select * from f",
        "table function 'read_text'",
    ),
    (
        "subquery",
        "select * from orders where order_id in (select 1 from (select * from glob('/*')))",
        "table function 'glob'",
    ),
    ("replacement_scan", "select * from '/etc/passwd'", "looks like a file path"),
    ("other_database", "select * from other_db.main.secrets", "names another database"),
    ("system_schema", "select * from information_schema.tables", "system schema"),
    ("query_function", "select * from query('select 1')", "table function 'query'"),
    ("getvariable", "select getvariable('x') as v from orders", "function 'getvariable'"),
    ("attach_in_cte", "with a as (attach '/tmp/x.db' as x) select 1", "found ATTACH inside it"),
    ("copy_in_subquery", "select * from (copy orders to '/tmp/out.csv')", "SQL syntax error"),
    ("two_statements", "select 1; install httpfs", "expected one SELECT statement, found 2"),
    ("set", "set enable_external_access = true", "only a SELECT is allowed"),
    ("pragma", "pragma database_list", "only a SELECT is allowed"),
    ("install", "install httpfs", "only a SELECT is allowed"),
    ("load", "load httpfs", "only a SELECT is allowed"),
]


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "assets_config"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _issues(folder: Path) -> list[str]:
    registry = load_registry([folder], external_tables=DBT_MODELS)
    return [str(i).replace(str(folder) + "/", "") for i in registry.issues]


@pytest.mark.parametrize(("probe", "select", "refusal"), SELECT_PROBES, ids=[p[0] for p in SELECT_PROBES])
def test_validation_refuses_the_probe_with_its_position(tmp_path, probe, select, refusal):
    text = "name: leak\nlayer: staging\nselect: |\n  " + select + "\n"
    issues = _issues(_write(tmp_path, {"orders.yaml": ORDERS, "leak.yaml": text}))
    # a refused table is also an unknown one: the cross-file check may report it too
    assert any(re.match(r"leak\.yaml:4:\d+: ", i) and refusal in i for i in issues), issues


@pytest.mark.parametrize(
    ("probe", "select", "refusal"),
    [p for p in SELECT_PROBES if "syntax" not in p[2] and "SELECT" not in p[2]],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_a_probe_that_skipped_validation_is_refused_at_run_time(tmp_path, probe, select, refusal):
    """A Dataset built without the registry's rules (as a bug might) still cannot run the probe."""
    dataset = Dataset.model_validate({"name": "leak", "layer": "staging", "select": select})
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.execute("create schema if not exists staging; create table orders as select 1 as order_id").fetchall()
        warehouse.sandbox(con)
        with pytest.raises(UnsafeSqlError, match=re.escape(refusal)):
            build_derived(con, dataset)
        assert not warehouse.table_exists(con, "staging.leak")


@pytest.mark.parametrize(
    "statement",
    [
        "select content from read_text('/etc/hostname')",
        "select * from read_csv('/proc/self/environ')",
        "attach '/tmp/strata-probe.db' as x",
        "copy (select 1) to '/tmp/strata-probe.csv'",
        "install httpfs",
        "load httpfs",
        "set enable_external_access = true",
        "set allowed_directories = ['/']",
    ],
)
def test_the_sandboxed_connection_refuses_the_raw_statement(tmp_path, statement):
    """DuckDB's own controls back the policy up: even raw text cannot reach the host."""
    landing = tmp_path / "landing"
    landing.mkdir()
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.sandbox(con, readable=[landing])
        with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
            con.execute(statement).fetchall()
    assert not Path("/tmp/strata-probe.csv").exists() and not Path("/tmp/strata-probe.db").exists()


def test_the_sandbox_still_reads_the_landing_zone_and_writes_the_warehouse(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("x\n1\n2\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("x\n3\n")
    (landing / "link.csv").symlink_to(outside)
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.sandbox(con, readable=[landing])
        con.execute(f"create table t as select * from read_csv('{landing / 'a.csv'}')").fetchall()
        assert con.execute("select sum(x) from t").fetchall() == [(3,)]
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"select * from read_csv('{outside}')").fetchall()
        with pytest.raises(duckdb.PermissionException):  # a symlink inside the landing zone pointing out
            con.execute(f"select * from read_csv('{landing / 'link.csv'}')").fetchall()


def test_a_custom_check_reading_the_host_or_an_unregistered_table_is_refused(tmp_path):
    checks = ORDERS + (
        "checks:\n"
        "  - type: custom_sql\n"
        "    name: host\n"
        "    sql: select content from read_text('/etc/hostname')\n"
        "  - type: custom_sql\n"
        "    name: other\n"
        "    sql: select * from {table} where order_id not in (select id from raw.not_registered)\n"
    )
    issues = _issues(_write(tmp_path, {"orders.yaml": checks}))
    assert any(i.startswith("orders.yaml:10:30:") and "table function 'read_text'" in i for i in issues), issues
    assert any(i.startswith("orders.yaml:13:70:") and "unknown table 'raw.not_registered'" in i for i in issues), issues


def test_a_custom_check_runs_as_parsed_with_its_placeholders_filled_on_the_tree():
    sql = sandboxed(
        with_placeholders("select * from {table} where {window} and amount < 0"),
        tables={CHECK_PLACEHOLDERS["{table}"]: '"raw"."orders"'},
        predicates={CHECK_PLACEHOLDERS["{window}"]: "\"day\" >= date '2024-01-01'"},
    )
    assert sql == 'SELECT * FROM "raw"."orders" WHERE ("day" >= CAST(\'2024-01-01\' AS DATE)) AND amount < 0'
    with pytest.raises(UnsafeSqlError, match="table function 'glob'"):
        sandboxed(with_placeholders("select * from {table}, glob('/*') where {window}"))


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("\"varchar) || (select max(content) from read_text('/etc/hostname')\"", "unknown type"),
        ('"int; drop table x"', "unknown type"),
        ("int x", "unknown type"),
        ("not_a_type", "unknown type"),
    ],
)
def test_a_type_carrying_sql_is_refused(tmp_path, declared, message):
    text = ORDERS.replace("{name: amount, type: DOUBLE}", f"{{name: amount, type: {declared}}}")
    [issue] = _issues(_write(tmp_path, {"orders.yaml": text}))
    assert issue.startswith("orders.yaml:6:") and message in issue, issue


def test_an_identifier_carrying_a_quote_is_refused(tmp_path):
    text = ORDERS.replace("{name: amount, type: DOUBLE}", """{name: 'a"b', type: DOUBLE}""")
    [issue] = _issues(_write(tmp_path, {"orders.yaml": text}))
    assert issue.startswith("orders.yaml:6:") and "lower snake_case identifier" in issue, issue


def test_no_probe_left_host_data_in_the_warehouse(tmp_path):
    """The whole suite's premise, checked directly: the host name appears in no table."""
    host = socket.gethostname()
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.sandbox(con)
        for _, select, _ in SELECT_PROBES:
            try:
                build_derived(con, Dataset.model_validate({"name": "leak", "layer": "staging", "select": select}))
            except (UnsafeSqlError, duckdb.Error):
                pass
        tables = con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        for schema, table in tables:
            dump = con.execute(f'select * from "{schema}"."{table}"').fetchall()
            assert host not in str(dump)
