"""strata registry validate: every kind of YAML mistake is reported as file:line:col, with a hint.

Each test writes one dataset file with one mistake and checks the exact position and message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import BIN

from strata.registry.loader import load_registry

DBT_MODELS = {"marts.fct_order_lines", "marts.dim_customer", "staging.stg_tpch__orders"}

VALID = """\
name: shop_orders
description: One row per order.
owners: [team:shop]
layer: raw
source:
  type: files
  format: csv
  path: shop/orders_{date}.csv
partitioning:
  column: order_date
  start: 2024-01-01
  end: 2024-12-31
load: overwrite_partition
primary_key: [order_id]
columns:
  - {name: order_id, type: BIGINT, nullable: false}
  - {name: order_date, type: DATE}
  - {name: amount, type: "DECIMAL(18,2)"}
"""


def issues_of(tmp_path: Path, text: str, name: str = "shop_orders.yaml", others: dict | None = None) -> list[str]:
    folder = tmp_path / "assets_config"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    for other, content in (others or {}).items():
        (folder / other).write_text(content)
    registry = load_registry([folder], external_tables=DBT_MODELS)
    return [str(i).replace(str(folder) + "/", "") for i in registry.issues]


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_the_valid_file_is_valid(tmp_path):
    assert issues_of(tmp_path, VALID) == []


def test_yaml_syntax_error(tmp_path):
    [issue] = issues_of(tmp_path, edit("  format: csv", "  format: [csv"))
    assert issue == (
        "shop_orders.yaml:8:7: YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 7, column 11)"
    )


def test_unknown_key_suggests_the_nearest(tmp_path):
    assert issues_of(tmp_path, edit("description:", "descripton:")) == [
        "shop_orders.yaml:2:1: unknown key 'descripton' (hint: did you mean 'description'?)"
    ]


def test_unknown_nested_key(tmp_path):
    assert issues_of(tmp_path, edit("  path:", "  pth:")) == [
        "shop_orders.yaml:6:3: missing required key 'path'",
        "shop_orders.yaml:8:3: unknown key 'pth' (hint: did you mean 'path'?)",
    ]


def test_missing_required_key(tmp_path):
    assert issues_of(tmp_path, edit("name: shop_orders\n", "")) == ["shop_orders.yaml:1:1: missing required key 'name'"]


def test_wrong_type(tmp_path):
    [issue] = issues_of(tmp_path, edit("  start: 2024-01-01", "  start: [2024]"))
    assert issue.startswith("shop_orders.yaml:11:10: start:")


def test_invalid_dataset_name(tmp_path):
    [issue] = issues_of(tmp_path, edit("name: shop_orders", "name: Shop-Orders"))
    assert issue == (
        "shop_orders.yaml:1:7: name: 'Shop-Orders' must be a lower snake_case identifier "
        "(a-z, 0-9 and _, not starting with a digit) (hint: for example sales_orders)"
    )


def test_invalid_enum_value_suggests_the_nearest(tmp_path):
    [issue] = issues_of(tmp_path, edit("load: overwrite_partition", "load: overwrite_partitions"))
    assert issue.startswith("shop_orders.yaml:13:7: load: 'overwrite_partitions' is not one of")
    assert issue.endswith("(hint: did you mean 'overwrite_partition'?)")


def test_unknown_source_type(tmp_path):
    [issue] = issues_of(tmp_path, edit("  type: files", "  type: file"))
    assert issue == (
        "shop_orders.yaml:6:9: unknown type 'file'; expected one of files, postgres, http (hint: did you mean 'files'?)"
    )


def test_invalid_date(tmp_path):
    [issue] = issues_of(tmp_path, edit("  end: 2024-12-31", "  end: 2024-13-31"))
    assert (
        issue
        == "shop_orders.yaml:12:8: end: '2024-13-31' is not a valid date (hint: write YYYY-MM-DD, e.g. 2024-01-31)"
    )


def test_end_before_start(tmp_path):
    assert issues_of(tmp_path, edit("  end: 2024-12-31", "  end: 2023-12-31")) == [
        "shop_orders.yaml:12:8: end 2023-12-31 is before start 2024-01-01"
    ]


def test_partition_column_missing_from_the_schema(tmp_path):
    assert issues_of(tmp_path, edit("  column: order_date", "  column: order_day")) == [
        "shop_orders.yaml:10:11: partition column 'order_day' is not among the declared columns "
        "(hint: did you mean 'order_date'?)"
    ]


def test_primary_key_not_among_the_columns(tmp_path):
    assert issues_of(tmp_path, edit("primary_key: [order_id]", "primary_key: [orderid]")) == [
        "shop_orders.yaml:14:15: primary key column 'orderid' is not among the declared columns "
        "(hint: did you mean 'order_id'?)"
    ]


def test_duplicate_column(tmp_path):
    assert issues_of(tmp_path, edit("{name: amount,", "{name: order_date,")) == [
        "shop_orders.yaml:18:12: column 'order_date' is declared twice"
    ]


def test_unknown_column_type(tmp_path):
    assert issues_of(tmp_path, edit("type: DATE", "type: DAET")) == [
        "shop_orders.yaml:17:30: column 'order_date': unknown type 'DAET' (hint: did you mean 'DATE'?)"
    ]


def test_unquoted_comma_in_a_flow_value(tmp_path):
    [issue] = issues_of(tmp_path, edit('type: "DECIMAL(18,2)"', "type: DECIMAL(18,2)"))
    assert issue == (
        "shop_orders.yaml:18:37: unknown key '2)': a comma inside a {...} value splits it "
        '(hint: quote the value, e.g. type: "DECIMAL(15,2)")'
    )


def test_duplicate_yaml_key(tmp_path):
    assert issues_of(tmp_path, edit("layer: raw\n", "layer: raw\nlayer: raw\n")) == [
        "shop_orders.yaml:5:1: duplicate key 'layer' (first at line 4); the later value would win"
    ]


def test_duplicate_dataset_name_across_files(tmp_path):
    found = issues_of(tmp_path, VALID, name="b.yaml", others={"a.yaml": VALID})
    assert found == [
        "b.yaml:1:7: dataset 'shop_orders' is already declared in a.yaml (hint: dataset names are unique across files)"
    ]


def test_path_escaping_the_landing_root(tmp_path):
    assert issues_of(tmp_path, edit("shop/orders_{date}.csv", "../../etc/orders_{date}.csv")) == [
        "shop_orders.yaml:8:9: the path must not leave the landing root ('..')"
    ]


def test_absolute_path(tmp_path):
    assert issues_of(tmp_path, edit("shop/orders_{date}.csv", "/data/orders_{date}.csv")) == [
        "shop_orders.yaml:8:9: the path must be relative to the landing root (hint: e.g. sales/{date}.csv)"
    ]


def test_partitioned_path_without_date(tmp_path):
    assert issues_of(tmp_path, edit("shop/orders_{date}.csv", "shop/orders.csv")) == [
        "shop_orders.yaml:8:9: a partitioned files dataset needs {date} in its path (hint: e.g. sales/{date}.csv)"
    ]


def test_literal_password(tmp_path):
    text = """\
name: crm_accounts
layer: raw
source:
  type: postgres
  connection:
    host: ${CRM_PG_HOST}
    database: ${CRM_PG_DATABASE}
    user: ${CRM_PG_USER}
    password: hunter2
  table: public.accounts
"""
    found = issues_of(tmp_path, text, name="crm.yaml")
    assert (
        "crm.yaml:9:15: 'password' holds a literal secret; secrets must not be written in YAML "
        "(hint: reference an environment variable: ${NAME})" in found
    )


def test_literal_connection_setting(tmp_path):
    text = (
        "name: crm\nsource:\n  type: postgres\n  connection:\n    host: db.internal\n    database: ${D}\n"
        "    user: ${U}\n  table: public.accounts\n"
    )
    assert issues_of(tmp_path, text, name="crm.yaml") == [
        "crm.yaml:5:11: host: 'db.internal' must be an environment variable reference "
        "(hint: write ${NAME}, e.g. ${ORDERS_PG_HOST}; set the variable where Dagster runs)"
    ]


def test_unquoted_env_reference_in_a_flow_mapping(tmp_path):
    text = "name: crm\nsource:\n  type: postgres\n  connection: {host: ${H}, database: ${D}, user: ${U}}\n"
    [issue] = issues_of(tmp_path, text, name="crm.yaml")
    assert issue.startswith("crm.yaml:4:") and issue.endswith('(hint: quote it inside {...}: token: "${NAME}")')


def test_literal_token_in_a_header(tmp_path):
    text = """\
name: weather
layer: raw
source:
  type: http
  url: https://api.example.com/weather
  headers:
    Authorization: Bearer abc123
"""
    assert issues_of(tmp_path, text, name="weather.yaml") == [
        "weather.yaml:7:20: 'Authorization' holds a literal secret; secrets must not be written in YAML "
        "(hint: reference an environment variable: ${NAME})"
    ]


SQL_DATASET = """\
name: segment_revenue
layer: mart
select: |
  select c.market_segment, sum(f.net_revenue) as revenue
  from marts.fct_order_lines f
  join marts.dim_customer c using (customer_key)
  group by all
"""


def test_sql_dataset_is_valid(tmp_path):
    assert issues_of(tmp_path, SQL_DATASET, name="seg.yaml") == []


def test_sql_must_be_a_single_select(tmp_path):
    text = edit(
        "  select c.market_segment",
        "  delete from marts.fct_order_lines; select c.market_segment",
        SQL_DATASET,
    )
    assert issues_of(tmp_path, text, name="seg.yaml") == ["seg.yaml:4:3: expected one SELECT statement, found 2"]


def test_sql_ddl_is_refused(tmp_path):
    text = SQL_DATASET.replace(SQL_DATASET.split("select: |\n")[1], "  drop table marts.fct_order_lines\n")
    assert issues_of(tmp_path, text, name="seg.yaml") == ["seg.yaml:4:3: only a SELECT is allowed, found DROP"]


def test_sql_syntax_error_is_placed_inside_the_sql(tmp_path):
    [issue] = issues_of(tmp_path, edit("  group by all", "  group by all having (", SQL_DATASET), name="seg.yaml")
    assert issue.startswith("seg.yaml:7:") and "SQL syntax error" in issue


def test_sql_reading_an_unknown_table(tmp_path):
    text = edit("marts.dim_customer", "marts.dim_customers", SQL_DATASET)
    assert issues_of(tmp_path, text, name="seg.yaml") == [
        "seg.yaml:6:8: select reads unknown table 'marts.dim_customers' (hint: did you mean 'marts.dim_customer'?)"
    ]


def test_referential_check_to_an_unknown_dataset(tmp_path):
    text = VALID + "checks:\n  - {type: referential, column: order_id, references: shop_order.id}\n"
    assert issues_of(tmp_path, text) == [
        "shop_orders.yaml:20:55: unknown dataset 'shop_order' (hint: did you mean 'shop_orders'?)"
    ]


def test_check_on_an_undeclared_column(tmp_path):
    text = VALID + "checks:\n  - {type: distribution, column: amont, max: 100}\n"
    assert issues_of(tmp_path, text) == [
        "shop_orders.yaml:20:34: distribution check: column 'amont' is not declared (hint: did you mean 'amount'?)"
    ]


def test_invalid_cron(tmp_path):
    [issue] = issues_of(tmp_path, VALID + 'freshness:\n  cron: "0 25 * * *"\n')
    assert issue.startswith("shop_orders.yaml:20:9: invalid cron expression '0 25 * * *'")


def test_merge_needs_a_primary_key(tmp_path):
    text = edit("primary_key: [order_id]\n", "", edit("load: overwrite_partition", "load: merge"))
    assert issues_of(tmp_path, text) == [
        "shop_orders.yaml:13:7: merge (upsert) needs a primary_key (hint: add primary_key: [id])"
    ]


def test_unknown_timezone(tmp_path):
    text = edit("  end: 2024-12-31", "  end: 2024-12-31\n  timezone: Europe/Amsterdm")
    assert issues_of(tmp_path, text) == [
        "shop_orders.yaml:13:13: unknown timezone 'Europe/Amsterdm' (hint: did you mean 'Europe/Amsterdam'?)"
    ]


def test_hourly_partitions_in_a_zone_with_half_hour_clock_changes(tmp_path):
    """Dagster's hours leave gaps across Australia/Lord_Howe's 30-minute changes: refused, saying when."""
    text = edit("  end: 2024-12-31", "  end: 2024-12-31\n  type: hourly\n  timezone: Australia/Lord_Howe")
    text = edit("shop/orders_{date}.csv", "shop/{date}/{hour}.csv", text)
    text = edit("{name: order_date, type: DATE}", "{name: order_date, type: TIMESTAMPTZ}", text)
    [issue] = issues_of(tmp_path, text)
    assert issue.startswith(
        "shop_orders.yaml:14:13: hourly partitions in Australia/Lord_Howe need clock changes of whole hours at whole "
        "hours, but on 2024-04-07 at 02:00:00 the clocks of Australia/Lord_Howe go back 30 minutes"
    )
    assert issues_of(tmp_path, edit("Australia/Lord_Howe", "America/Los_Angeles", text)) == []


def test_a_day_the_clocks_skip_is_refused_for_days(tmp_path):
    text = edit(
        "  start: 2024-01-01\n  end: 2024-12-31", "  start: 2011-12-01\n  end: 2012-01-31\n  timezone: Pacific/Apia"
    )
    [issue] = issues_of(tmp_path, text)
    assert (
        "daily partitions in Pacific/Apia need no skipped or repeated day, but on 2011-12-30 at 00:00:00 the " in issue
    )
    assert "clocks of Pacific/Apia go forward 1 day(s)" in issue


def test_an_hourly_partition_column_must_be_a_time(tmp_path):
    text = edit("  end: 2024-12-31", "  end: 2024-12-31\n  type: hourly")
    text = edit("shop/orders_{date}.csv", "shop/{date}/{hour}.csv", text)
    [issue] = issues_of(tmp_path, text)
    assert issue.startswith(
        "shop_orders.yaml:18:30: partition column 'order_date' is a DATE: it cannot place a row in an hour"
    )
    [issue] = issues_of(tmp_path, edit("{name: order_date, type: DATE}", "{name: order_date, type: BIGINT}"))
    assert "partition column 'order_date' is BIGINT: it must be a DATE, TIMESTAMP or TIMESTAMPTZ" in issue


def test_incomplete_is_for_sql_datasets_and_complete_is_reserved(tmp_path):
    text = edit("  end: 2024-12-31", "  end: 2024-12-31\n  incomplete: publish")
    text = edit("  - {name: amount", "  - {name: _complete, type: BOOLEAN}\n  - {name: amount", text)
    issues = issues_of(tmp_path, text)
    assert any("incomplete applies to SQL-derived datasets" in i for i in issues)
    assert any("column '_complete' is reserved for load metadata" in i for i in issues)


def test_a_freshness_lower_bound_longer_than_the_deadline_interval(tmp_path):
    """Dagster refuses it when it builds the policy, which would stop the code location from loading."""
    [issue] = issues_of(tmp_path, VALID + 'freshness:\n  cron: "30 * * * *"\n')
    assert issue.startswith(
        "shop_orders.yaml:20:3: lower_bound 1d is longer than the 3,600 s between two ticks of '30 * * * *' "
        "(hint: at most 1h)"
    )
    assert issues_of(tmp_path, VALID + 'freshness:\n  cron: "30 * * * *"\n  lower_bound: 1h\n') == []


def test_empty_file_and_non_mapping(tmp_path):
    assert issues_of(tmp_path, "") == [
        "shop_orders.yaml:1:1: the file is empty (hint: a dataset file is a mapping: name, layer, ...)"
    ]
    [issue] = issues_of(tmp_path, "- name: x\n")
    assert issue.startswith("shop_orders.yaml:1:1: a dataset file must be a mapping")


def test_every_error_of_every_file_is_reported(tmp_path):
    text = edit("description:", "descripton:", edit("layer: raw", "layer: bronze", edit("type: DATE", "type: DAET")))
    found = issues_of(tmp_path, text, others={"other.yaml": "name: Other\n"})
    assert [i.split(":")[0] for i in found] == ["other.yaml", "shop_orders.yaml", "shop_orders.yaml"] or len(found) >= 3
    assert any(i.startswith("other.yaml:1:7:") for i in found)
    assert any(i.startswith("shop_orders.yaml:2:1: unknown key 'descripton'") for i in found)
    assert any(i.startswith("shop_orders.yaml:4:8: layer: 'bronze'") for i in found)


def test_validate_cli_prints_file_line_col_and_exits_1(tmp_path):
    folder = tmp_path / "assets_config"
    folder.mkdir()
    (folder / "good.yaml").write_text(VALID)
    (folder / "bad.yaml").write_text(edit("name: shop_orders", "name: shop_bad", edit("layer: raw", "layer: bronze")))
    out = subprocess.run(
        [str(BIN / "strata"), "registry", "validate", str(folder)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert out.stdout.splitlines()[0].startswith("assets_config/bad.yaml:4:8: layer: 'bronze' is not one of")
    assert "2 file(s): 1 valid, 1 with errors, 1 error(s)" in out.stdout
    ok = subprocess.run(
        [str(BIN / "strata"), "registry", "validate", str(folder / "good.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout


@pytest.mark.parametrize("source", ["files", "postgres", "http"])
def test_scaffolded_files_are_valid(tmp_path, source):
    out = subprocess.run(
        [
            str(BIN / "strata"),
            "registry",
            "new",
            f"demo_{source}",
            "--source",
            source,
            "--dir",
            str(tmp_path / "assets_config"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (
        issues_of(
            tmp_path,
            (tmp_path / "assets_config" / f"demo_{source}.yaml").read_text(),
            name=f"demo_{source}.yaml",
        )
        == []
    )
