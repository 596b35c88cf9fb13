"""Code-location load time with 10, 100 and 1,000 generated registry datasets, plus the dbt project.

    .venv/bin/python bench/registry_load.py          # appends the results to docs/benchmarks.md

Each measurement is a fresh Python process (as a code server is) that imports the code location
(`strata.definitions`: the registry, the dbt manifest, every asset) and builds the repository
snapshot the webserver receives (`RepositorySnap.from_def`). Median of 3 runs. The baseline is the
same load with no generated datasets (the project's own registry and dbt project).
Target: ≤ 5 s at 1,000 (Dagster issue #16129 reports more than 60 s for 2,000 assets).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import time, warnings
start = time.perf_counter()
warnings.filterwarnings("ignore")
import dagster
imported = time.perf_counter()
from strata.definitions import defs
built = time.perf_counter()
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value
snap = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
done = time.perf_counter()
import json
print(json.dumps({"import_dagster": imported - start, "definitions": built - imported,
                  "snapshot": done - built, "total": done - start, "assets": len(defs.assets),
                  "snapshot_bytes": len(snap)}))
"""

KINDS = [
    lambda i: (
        f"""name: gen_{i:04d}
description: Generated file dataset {i}.
owners: [team:bench]
group: bench_{i % 10}
layer: raw
source: {{type: files, format: csv, path: "gen/{i}/{{date}}.csv"}}
partitioning: {{column: day, start: 2024-01-01, end: 2024-12-31}}
primary_key: [id]
columns:
  - {{name: id, type: BIGINT, nullable: false, unique: true}}
  - {{name: day, type: DATE, nullable: false}}
  - {{name: amount, type: "DECIMAL(18,2)", range: {{min: 0}}}}
  - {{name: status, type: VARCHAR, accepted_values: [a, b, c]}}
checks:
  - {{type: volume, min_rows: 1}}
freshness: {{cron: "0 6 * * *"}}
"""
    ),
    lambda i: (
        f"""name: gen_{i:04d}
owners: [team:bench]
layer: raw
source:
  type: postgres
  connection: {{host: "${{PG_HOST}}", database: "${{PG_DB}}", user: "${{PG_USER}}"}}
  table: public.t_{i}
  incremental: {{cursor: updated_at, lag: 1h}}
load: merge
primary_key: [id]
columns:
  - {{name: id, type: BIGINT}}
  - {{name: updated_at, type: TIMESTAMP}}
"""
    ),
    lambda i: (
        f"""name: gen_{i:04d}
layer: mart
select: |
  select order_date, count(*) as n from marts.fct_order_lines group by 1
partitioning: {{column: order_date, start: 1992-01-01, end: 1998-08-02}}
"""
    ),
]


def generate(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"gen_{i:04d}.yaml").write_text(KINDS[i % len(KINDS)](i))


def measure(config: str, repeats: int = 3) -> dict:
    runs = []
    env = {**os.environ, "STRATA_ASSETS_CONFIG": config, "STRATA_DATA_DIR": tempfile.mkdtemp()}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "process_wall": wall})
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (0, 10, 100, 1000):
            folder = Path(tmp) / f"n{n}"
            generate(folder, n)
            config = f"{ROOT / 'assets_config'}:{folder}"
            results[n] = measure(config)
            print(n, json.dumps(results[n]), flush=True)
    base = results[0]["process_wall"]
    lines = [
        "",
        "## Code-location load time with registry datasets",
        "",
        "Reproduce with `.venv/bin/python bench/registry_load.py`. A fresh process imports the code location "
        "(the 8 TPC-H datasets, the dbt project and N generated datasets: a third each partitioned CSV, "
        "incremental Postgres and SQL-derived) and serializes the repository snapshot the webserver receives. "
        f"Median of 3, {time.strftime('%Y-%m-%d')}.",
        "",
        "| generated datasets | assets | process wall (s) | ratio to 0 | import dagster (s) | build definitions (s) | snapshot (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in results.items():
        lines.append(
            f"| {n} | {r['assets']:.0f} | {r['process_wall']:.2f} | {r['process_wall'] / base:.2f} | "
            f"{r['import_dagster']:.2f} | {r['definitions']:.2f} | {r['snapshot']:.2f} |"
        )
    target = "met" if results[1000]["process_wall"] <= 5 else "not met"
    added = results[1000]["process_wall"] - base
    lines += [
        "",
        f"Target ≤ 5 s at 1,000: {target} ({results[1000]['process_wall']:.2f} s). The registry itself is not "
        f"the cost: 1,000 datasets add {added:.2f} s to a {base:.2f} s baseline, of which reading and validating "
        "the files (YAML with positions, pydantic, sqlglot for the SELECTs) is about 0.6 s. The rest is Dagster's: "
        "the interpreter and the imports of Dagster, dagster-dbt and dbt take about 3 s before any dataset is "
        "read, each `@asset` builds an op definition (~0.45 ms), and the snapshot sent to the webserver holds "
        "the implicit asset job with one op per dataset (~6 KB each). Grouping raw datasets into subsettable "
        "`multi_asset`s would save about 0.6 s (measured on synthetic assets) at the price of one failing "
        "dataset failing its siblings' step; not done. Tried and kept: lazy imports of DuckDB and the readers "
        "(−0.2 s), caching type and SQL parsing (−0.1 s).",
        "",
    ]
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    marker = "\n## Code-location load time with registry datasets"
    if marker in text:
        text = text[: text.index(marker)]
    doc.write_text(text.rstrip("\n") + "\n" + "\n".join(lines))
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
