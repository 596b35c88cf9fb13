"""A broken dataset file never stops the code location, and validate names every mistake in one run.

Each case is one file with one mistake, beside a valid dataset. The registry must report the
mistake at ``file:line:col``, still load the valid dataset, and the Dagster definitions must still
build (a broken file becomes a placeholder asset). Then all of them together, in one run.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN

from strata.definitions import build_definitions
from strata.registry.loader import load_registry

DBT_MODELS = {"marts.fct_order_lines", "staging.stg_tpch__orders"}

GOOD = """\
name: good
layer: raw
source: {type: files, format: csv, path: "good/{date}.csv"}
partitioning: {start: 2024-01-01, end: 2024-01-31}
columns:
  - {name: id, type: BIGINT}
  - {name: status, type: VARCHAR}
"""


def _bomb(levels: int) -> str:
    lines = ['name: bomb\nlayer: raw\na0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


#: (case, file bytes, expected issue: regex over "file:line:col: message").
CASES = [
    ("not_utf8", b"name: caf\xe9\nlayer: raw\n", r"case\.yaml:1:10: the file is not UTF-8"),
    (
        "dbt_model_name",
        b"name: fct_order_lines\nlayer: mart\nselect: select * from raw.good\n",
        r"case\.yaml:1:7: 'marts\.fct_order_lines' is a dbt model",
    ),
    (
        "six_field_cron",
        GOOD.replace("name: good", "name: cron").encode() + b"freshness: {cron: '0 0 9 * * *'}\n",
        r"case\.yaml:8:19: invalid cron expression '0 0 9 \* \* \*'",
    ),
    (
        "unclosed_quote",
        b'name: q\nlayer: staging\nselect: "select \'oops from raw.good"\n',
        r"case\.yaml:3:17: SQL syntax error: a quote or comment that opens here is never closed",
    ),
    ("complex_key", b"? [a, b]\n: 1\nname: k\n", r"case\.yaml:1:3: a key must be a plain name"),
    (
        "deep_nesting",
        b"name: deep\nlayer: " + b"[" * 3000 + b"]" * 3000 + b"\n",
        r"case\.yaml:2:\d+: nesting deeper than 64 levels",
    ),
    (
        "end_9999",
        GOOD.replace("name: good", "name: far").replace("end: 2024-01-31", "end: 9999-12-31").encode(),
        r"case\.yaml:4:40: end 9999-12-31 is outside 1900-01-01 \.\. 2999-12-31",
    ),
    (
        "path_format_spec",
        GOOD.replace("name: good", "name: fmt").replace("good/{date}.csv", "fmt/{date:%Y%m%d}.csv").encode(),
        r"case\.yaml:3:\d+: unknown placeholder\(s\) in path: date:%Y%m%d",
    ),
    (
        "yaml_11_booleans",
        GOOD.replace("name: good", "name: yn")
        .replace("{name: status, type: VARCHAR}", "{name: status, type: VARCHAR, accepted_values: [yes, no]}")
        .encode(),
        r"case\.yaml:7:\d+: 'yes' is read as a boolean \(YAML 1\.1\)",
    ),
    (
        "python_only_regex",
        GOOD.replace("name: good", "name: rx")
        .replace("{name: status, type: VARCHAR}", "{name: status, type: VARCHAR, pattern: '(?=A)[A-Z]+'}")
        .encode(),
        r"case\.yaml:7:\d+: pattern: DuckDB cannot run it: invalid perl operator",
    ),
    ("alias_bomb", _bomb(9).encode(), r"case\.yaml:\d+:\d+: the file expands to more than 50,000 values"),
    (
        "type_with_trailing_sql",
        GOOD.replace("name: good", "name: ty").replace("type: BIGINT", 'type: "int; drop table x"').encode(),
        r"case\.yaml:6:\d+: column 'id': unknown type 'int; drop table x'",
    ),
]


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "assets_config"
    folder.mkdir(exist_ok=True)
    (folder / "good.yaml").write_text(GOOD)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def _issues(folder: Path) -> tuple[list[str], set[str]]:
    registry = load_registry([folder], external_tables=DBT_MODELS)
    return [str(i).replace(str(folder) + "/", "") for i in registry.issues], set(registry.datasets)


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_mistake_is_reported_at_its_position_and_the_rest_loads(tmp_path, case, content, expected):
    issues, valid = _issues(_folder(tmp_path, {"case.yaml": content}))
    assert any(re.match(expected, i) for i in issues), issues
    assert valid == {"good"}


def test_an_alias_bomb_is_rejected_fast(tmp_path):
    started = time.perf_counter()
    issues, _ = _issues(_folder(tmp_path, {"case.yaml": _bomb(12).encode()}))
    assert any("expands to more than" in i for i in issues)
    # not a timing assertion on the platform: a guard against exponential expansion (9 s at 9 levels before)
    assert time.perf_counter() - started < 5


def test_every_mistake_at_once_still_builds_the_definitions(tmp_path, monkeypatch):
    """All the cases in one folder: one run lists them all, and the code location loads."""
    folder = _folder(tmp_path, {f"{case}.yaml": content for case, content, _ in CASES})
    issues, valid = _issues(folder)
    for case, _, expected in CASES:
        assert any(re.match(expected.replace("case\\.yaml", re.escape(case) + "\\.yaml"), i) for i in issues), case
    assert valid == {"good"}
    defs = build_definitions(config_dirs=[folder])
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "raw/good" in keys
    assert sum(k.startswith(("raw/invalid_", "staging/invalid_", "marts/invalid_")) for k in keys) >= 5


def test_validate_reads_strata_assets_config_and_lists_every_error(tmp_path):
    folder = _folder(tmp_path, {f"{case}.yaml": content for case, content, _ in CASES})
    env = {"STRATA_ASSETS_CONFIG": str(folder), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([BIN / "strata", "registry", "validate"], capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{len(CASES) + 1} file(s): 1 valid, {len(CASES)} with errors" in result.stdout
    for case, _, _ in CASES:
        assert f"{case}.yaml:" in result.stdout, case


def test_a_sql_dataset_with_three_mistakes_in_three_files_is_reported_in_one_run(tmp_path):
    files = {
        "a.yaml": b"name: a\nlayer: staging\nselect: select * from raw.goood\n",  # cross-file
        "b.yaml": b"name: b\nlayer: staging\nselect: select 'x from raw.good\n",  # syntax
        "c.yaml": b"name: c\nlayer: staging\nselect: select * from raw.nope, read_text('/etc/hostname')\n",
    }
    issues, valid = _issues(_folder(tmp_path, files))
    assert any(i.startswith("a.yaml:3:") and "did you mean 'raw.good'" in i for i in issues), issues
    assert any(i.startswith("b.yaml:3:16:") and "never closed" in i for i in issues), issues
    assert any(i.startswith("c.yaml:3:") and "read_text" in i for i in issues), issues
    assert any(i.startswith("c.yaml:3:23:") and "unknown table 'raw.nope'" in i for i in issues), issues
    assert valid == {"good"}


FLIGHTS = """\
name: flights
layer: raw
source: {type: files, format: csv, path: "flights/{date}.csv"}
partitioning: {start: 2024-01-01}
columns:
  - {name: flight_date, type: DATE}
  - {name: carrier, type: VARCHAR}
  - {name: dep_delay, type: INTEGER}
"""


def test_a_misspelt_column_in_a_select_is_caught_with_a_suggestion(tmp_path):
    delays = (
        b"name: delays\nlayer: mart\n"
        b"partitioning: {column: flight_date, start: 2024-01-01}\n"
        b"select: select f.flight_date, f.carrier, avg(f.dep_dealy) as delay from raw.flights f group by all\n"
    )
    issues, valid = _issues(_folder(tmp_path, {"flights.yaml": FLIGHTS.encode(), "delays.yaml": delays}))
    assert issues == ["delays.yaml:4:46: unknown column 'dep_dealy' (did you mean 'dep_delay'?)"]
    assert valid == {"good", "flights"}


def test_a_partition_column_the_select_does_not_produce_is_caught(tmp_path):
    delays = (
        b"name: delays\nlayer: mart\n"
        b"partitioning: {column: flight_day, start: 2024-01-01}\n"
        b"select: select flight_date, carrier, avg(dep_delay) as delay from flights group by all\n"
    )
    issues, _ = _issues(_folder(tmp_path, {"flights.yaml": FLIGHTS.encode(), "delays.yaml": delays}))
    assert issues == [
        "delays.yaml:3:24: partition column 'flight_day' is not a column of the select (hint: did you mean 'flight_date'?)"
    ]


def test_a_select_over_declared_and_load_columns_is_valid(tmp_path):
    delays = (
        b"name: delays\nlayer: mart\n"
        b"partitioning: {column: flight_date, start: 2024-01-01}\n"
        b"select: select *, _source_file as origin from flights where dep_delay > 0\n"
    )
    issues, valid = _issues(_folder(tmp_path, {"flights.yaml": FLIGHTS.encode(), "delays.yaml": delays}))
    assert issues == [] and "delays" in valid


def test_a_schema_error_does_not_hide_the_sql_error_of_the_same_file(tmp_path):
    text = b"name: leak\nlayer: staging\ndescripton: typo\nselect: select content from read_text('/etc/hostname')\n"
    issues, _ = _issues(_folder(tmp_path, {"leak.yaml": text}))
    assert any(i.startswith("leak.yaml:3:1: unknown key 'descripton'") for i in issues), issues
    assert any(i.startswith("leak.yaml:4:") and "read_text" in i for i in issues), issues
