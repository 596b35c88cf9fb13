"""``strata registry new``: commented dataset files to start from, one per source type."""

from __future__ import annotations

_COMMON = """\
# {name}: a dataset in Strata's registry. Reference: docs/registry.md
# Check it with `strata registry validate`, then reload the code location in the Dagster UI.
name: {name}                      # lower snake_case; the table is raw.{name}
description: TODO say what one row is and where it comes from.
owners: [you@example.com]         # emails or team:<name>
group: raw                        # the Dagster group (your domain); default: the layer
tags: {{domain: TODO}}
layer: raw
"""

_CONTRACT = """\
primary_key: [id]
columns:                          # the contract: extra source columns are kept, these must exist
  - {{name: id, type: BIGINT, nullable: false, unique: true}}
  - {{name: {partition_column}, type: DATE, nullable: false}}
  - {{name: amount, type: "DECIMAL(18,2)", range: {{min: 0}}}}
  - {{name: status, type: VARCHAR, accepted_values: [open, closed]}}
checks:                           # enforced on every loaded partition
  - {{type: volume, min_rows: 1}}
freshness:                        # new data is due by 06:00 UTC each day
  cron: "0 6 * * *"
"""

TEMPLATES = {
    "files": _COMMON
    + """\
source:
  type: files
  format: csv                     # csv, parquet, json (an array) or ndjson
  path: {name}/{{date}}.csv        # relative to the landing root; {{date}} = YYYY-MM-DD; globs allowed
  csv:
    delimiter: ","
    header: true
    null_strings: ["", "NA"]
    date_format: "%Y-%m-%d"
partitioning:                     # one partition per day; a missing file for a day is an error
  start: 2024-01-01
  # end: 2024-12-31               # last day (inclusive); default: up to today
load: overwrite_partition         # a re-run replaces exactly that day
"""
    + _CONTRACT,
    "postgres": _COMMON
    + """\
source:
  type: postgres
  connection:                     # environment variables only; never write a password here
    host: ${{{upper}_PG_HOST}}
    port: ${{{upper}_PG_PORT}}
    database: ${{{upper}_PG_DATABASE}}
    user: ${{{upper}_PG_USER}}
    password: ${{{upper}_PG_PASSWORD}}
  table: public.{name}            # or: query: select ... from ...
  incremental:                    # read rows changed since the last load (high-water mark)
    cursor: updated_at
    lag: 1h                       # re-read the last hour, for rows that commit late
load: merge                       # upsert by primary key; unchanged rows stay as they are
primary_key: [id]
columns:
  - {{name: id, type: BIGINT, nullable: false, unique: true}}
  - {{name: updated_at, type: TIMESTAMP, nullable: false}}
  - {{name: amount, type: "DECIMAL(18,2)"}}
freshness:
  cron: "0 * * * *"               # hourly
  lower_bound: 1h                 # at most the time between two ticks
""",
    "http": _COMMON
    + """\
source:
  type: http
  url: https://api.example.com/v1/{name}
  params: {{day: "{{date}}"}}        # {{date}}, {{start}} and {{end}} are the partition window
  auth:
    type: bearer
    token: ${{{upper}_API_TOKEN}}   # quote it ("${{...}}") inside a {{...}} mapping
  records_path: data              # where the list of records is in each page
  pagination: {{type: page, page_param: page, size_param: per_page, page_size: 100}}
  rate_limit_per_second: 5
  retries: {{attempts: 5, backoff_seconds: 1}}
partitioning:
  column: {partition_column}      # the date column that places each record in its day
  start: 2024-01-01
load: overwrite_partition
"""
    + _CONTRACT,
}


def render(name: str, source: str) -> str:
    """A commented dataset file for ``name`` with a ``source`` of ``files``, ``postgres`` or ``http``."""
    return TEMPLATES[source].format(name=name, upper=name.upper(), partition_column="event_date")
