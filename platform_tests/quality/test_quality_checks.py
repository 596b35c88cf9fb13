"""Quality through Dagster: TPC-H checks pass, a corrupt partition stops the marts (in its run and
in any later run), rows land in quarantine with counts that add up, metadata is on every
materialization. The checks on every layer and the quarantine and gate run on both warehouse
backends (a DuckDB file and a DuckLake)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SEEDED_KEYS, daily_file, on_both_backends

from strata.errors import PartitionsSkippedError

DAY = "1995-01-10"
RAW_LINEITEM = dg.AssetKey(["raw", "tpch_lineitem"])
FCT = dg.AssetKey(["marts", "fct_order_lines"])
MART = dg.AssetKey(["marts", "mart_revenue_daily"])


def evaluations(result) -> dict[tuple[str, str], object]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


@on_both_backends
def test_tpch_checks_pass_on_every_layer(seeded):
    """Raw, staging and marts: every error-severity check passes (what the demo shows green)."""
    result = seeded.materialize(seeded.keys(partitioned=True), start="1995-01-01", end="1995-01-31")
    assert result.success
    found = evaluations(result)
    failed_errors = [k for k, e in found.items() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert failed_errors == []
    assert found[("raw/tpch_lineitem", "volume")].severity == dg.AssetCheckSeverity.WARN  # noise at SF 0.01
    for check in (
        "schema",
        "reconciliation",
        "row_accounting",
        "quarantine_threshold",
        "referential_l_orderkey",
        "referential_l_partkey",
        "referential_l_suppkey",
    ):
        assert found[("raw/tpch_lineitem", check)].passed, check
    assert found[("marts/mart_revenue_daily", "revenue_reconciliation")].passed
    assert any(k[1].startswith("row_count_matches_fct_order_lines") for k in found)
    # checks are per partition: the result names the partitions it covered
    schema = found[("raw/tpch_lineitem", "schema")]
    assert schema.metadata["partitions_covered"].value == "1995-01-01 .. 1995-01-31 (31 partitions)"


def corrupt(platform, day: str, share: float) -> int:
    """Give ``share`` of the line items of ``day`` a return flag outside {A, N, R}; return how many."""
    path = daily_file(platform.settings.landing_dir, "lineitem", day)
    table = pq.read_table(path)
    flags = table.column("l_returnflag").to_pylist()
    bad = int(len(flags) * share) or 1
    flags[:bad] = ["X"] * bad
    pq.write_table(
        table.set_column(table.schema.get_field_index("l_returnflag"), "l_returnflag", pa.array(flags)), path
    )
    return bad


@on_both_backends
def test_a_corrupt_partition_stops_the_marts_and_lands_in_quarantine(damaged_platform):
    """A blocking Python check on raw stops dbt: in its own run (Dagster skips the dbt step) and in
    any later run (the quality gate), which closes dagster-io/dagster#25112's gap across runs."""
    platform = damaged_platform
    selection = platform.keys(partitioned=True)
    mart_before = platform.query("select * from marts.mart_revenue_daily order by 1")
    read = platform.query(f"select count(*) from raw.tpch_lineitem where _partition_date = date '{DAY}'")[0][0]
    bad = corrupt(platform, DAY, 0.5)

    result = platform.materialize(selection, partition=DAY, raise_on_error=False)

    assert not result.success
    found = evaluations(result)
    threshold = found[("raw/tpch_lineitem", "quarantine_threshold")]
    assert not threshold.passed and threshold.severity == dg.AssetCheckSeverity.ERROR
    assert found[("raw/tpch_lineitem", "row_accounting")].passed
    # the marts did not run, and still hold the previous numbers
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert RAW_LINEITEM in materialized and FCT not in materialized and MART not in materialized
    assert platform.query("select * from marts.mart_revenue_daily order by 1") == mart_before
    # the bad rows are in quarantine, with their reason, file, row and payload; the counts add up
    rows = platform.query(
        "select _rule, _column, _source, _source_row, _reason, _payload from quarantine.tpch_lineitem "
        f"where _partition_date = date '{DAY}' order by _source_row"
    )
    assert len(rows) == bad and {r[:2] for r in rows} == {("accepted_values", "l_returnflag")}
    assert (
        rows[0][2] == f"tpch/lineitem/lineitem_{DAY}.parquet" and rows[0][3] == 1 and '"l_returnflag":"X"' in rows[0][5]
    )
    loaded = platform.query(f"select count(*) from raw.tpch_lineitem where _partition_date = date '{DAY}'")[0][0]
    assert loaded + len(rows) == read
    [mat] = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == RAW_LINEITEM]
    assert mat.metadata["rows_quarantined"].value == bad and mat.metadata["rows_in_partition"].value == loaded

    # a later run of dbt alone is refused by the gate: the dbt step does not build on that day
    dbt_only = [k for k in selection if k.path[0] in ("staging", "marts")]
    later = platform.materialize(dbt_only, partition=DAY, raise_on_error=False)
    assert not later.success
    [failure] = [e for e in later.all_events if e.is_step_failure]
    assert PartitionsSkippedError.__name__ in failure.step_failure_data.error.to_string()
    assert "built 0 of 1 partition(s); 1 skipped" in failure.step_failure_data.error.to_string()
    assert f"raw/tpch_lineitem quarantine_threshold failed on {DAY}" in failure.step_failure_data.error.to_string()
    assert platform.query("select * from marts.mart_revenue_daily order by 1") == mart_before

    # other days are not blocked
    assert platform.materialize(dbt_only, partition="1995-01-11").success


def test_one_bad_day_in_a_range_run_costs_that_day_only(damaged_platform):
    """A single run over three days, raw through the marts: the day that fails a blocking check on raw is
    held back, the other two build through the marts in the same run, and the run fails naming the day."""
    platform = damaged_platform
    before = dict(platform.query("select order_date, revenue from marts.mart_revenue_daily"))
    corrupt(platform, DAY, 0.5)
    result = platform.materialize(
        platform.keys(partitioned=True), start="1995-01-09", end="1995-01-11", raise_on_error=False
    )
    assert not result.success
    threshold = evaluations(result)[("raw/tpch_lineitem", "quarantine_threshold")]
    assert not threshold.passed and threshold.severity == dg.AssetCheckSeverity.WARN
    assert threshold.description.startswith("Blocking on 1 of 3 partitions")
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "dbt_incremental"
    message = failure.step_failure_data.error.to_string()
    assert "built 2 of 3 partition(s); 1 skipped" in message
    assert f"{DAY}: raw/tpch_lineitem quarantine_threshold failed on {DAY}" in message
    built = {e.partition for e in result.get_asset_materialization_events() if e.asset_key == MART}
    assert built == {"1995-01-09", "1995-01-11"}
    after = dict(platform.query("select order_date, revenue from marts.mart_revenue_daily"))
    held = {d for d in after if str(d) == DAY}
    assert held and all(after[d] == before[d] for d in held)  # the held-back day keeps its numbers
    # and the two days that built equal their recomputation from the landing files
    from strata.partition_window import PartitionWindow
    from strata.reconcile.tpch import tpch_datasets, verify

    for first, end in (("1995-01-09", "1995-01-10"), ("1995-01-11", "1995-01-12")):
        window = PartitionWindow.from_dates("daily", "UTC", date.fromisoformat(first), date.fromisoformat(end))
        report = verify(tpch_datasets(), platform.settings.landing_dir, platform.settings.warehouse, window)
        assert report.ok, report.mismatches


def test_fixing_the_source_reopens_the_gate(damaged_platform, tpch_landing):
    platform = damaged_platform
    selection = platform.keys(partitioned=True)
    corrupt(platform, DAY, 0.5)
    assert not platform.materialize(selection, partition=DAY, raise_on_error=False).success
    original = daily_file(tpch_landing, "lineitem", DAY).read_bytes()
    daily_file(platform.settings.landing_dir, "lineitem", DAY).write_bytes(original)
    result = platform.materialize(selection, partition=DAY)
    assert result.success
    assert platform.query(f"select count(*) from quarantine.tpch_lineitem where _partition_date = date '{DAY}'") == [
        (0,)
    ]


def test_a_new_source_column_is_kept_and_only_warns(damaged_platform):
    """Schema drift is a warning: the new column lands in raw, and the marts still build."""
    platform = damaged_platform
    path = daily_file(platform.settings.landing_dir, "orders", "1995-01-12")
    table = pq.read_table(path)
    pq.write_table(table.append_column("o_channel", pa.array(["web"] * len(table))), path)
    result = platform.materialize(platform.keys(partitioned=True), partition="1995-01-12")
    assert result.success
    drift = evaluations(result)[("raw/tpch_orders", "schema_drift")]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "o_channel" in drift.description
    assert platform.query(
        "select distinct o_channel from raw.tpch_orders where _partition_date = date '1995-01-12'"
    ) == [("web",)]
    assert MART in {e.asset_key for e in result.get_asset_materialization_events()}


def test_materializations_carry_row_count_schema_quarantine_preview_and_lineage(seeded):
    result = seeded.materialize(seeded.keys(partitioned=True), partition="1995-01-12")
    mats = {(e.asset_key.to_user_string()): e.materialization for e in result.get_asset_materialization_events()}
    raw = mats["raw/tpch_orders"].metadata
    assert raw["dagster/row_count"].value > 0 and raw["rows_quarantined"].value == 0
    assert "o_orderkey" in [c.name for c in raw["dagster/column_schema"].schema.columns]
    assert len(raw["preview"].records) == 5
    fct = mats["marts/fct_order_lines"].metadata
    assert fct["dagster/row_count"].value > 0
    assert "dagster/column_lineage" in fct and "dagster/column_schema" in fct


@pytest.mark.parametrize("partition", [SEEDED_KEYS[0]])
def test_quality_results_are_recorded_per_partition(seeded, partition):
    seeded.materialize(seeded.keys(partitioned=True), partition=partition)
    rows = seeded.query(
        "select asset, check_name, passed from quality.check_results where partition_date = ? "
        "and asset = 'raw/tpch_orders' order by check_name",
        [partition],
    )
    assert ("raw/tpch_orders", "schema", True) in rows and len(rows) >= 6


def test_dbt_column_types_fails_on_a_changed_type_and_an_undeclared_column(seeded):
    """The ``column_types`` dbt test (an asset check) compares the model YAML's ``data_type`` to the
    catalog: a column whose type changed and, being strict, a column nobody declared both fail it."""
    import duckdb

    region = dg.AssetKey(["staging", "stg_tpch__region"])
    key = dg.AssetCheckKey(region, "column_types_stg_tpch__region_True")

    def run_check():
        job = seeded.job.get_subset(asset_selection=set(), asset_check_selection={key})
        [evaluation] = job.execute_in_process(
            instance=seeded.instance, raise_on_error=False
        ).get_asset_check_evaluations()
        return evaluation

    assert run_check().passed
    with duckdb.connect(str(seeded.settings.warehouse_path)) as con:
        con.execute("alter table staging.stg_tpch__region alter region_key type integer")
        con.execute("alter table staging.stg_tpch__region add column extra varchar")
    evaluation = run_check()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["dagster_dbt/failed_row_count"].value == 2
