"""One run, as its own process: materialize ``selection`` for ``start..end`` (inclusive keys).

Used by the lake's concurrency tests to start several runs at once against one Dagster instance
(``DAGSTER_HOME``) and one lake. Prints ``ok <run id>`` or exits 1 with the run's errors.

    python run_range.py START END KEY [KEY ...]      (keys as ``raw/tpch_orders``)
"""

from __future__ import annotations

import sys

import dagster as dg

from strata.definitions import build_definitions


def main(argv: list[str]) -> int:
    start, end, *keys = argv
    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey.from_user_string(k) for k in keys],
            tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
            raise_on_error=False,
        )
        if result.success:
            print("ok", result.run_id)
            return 0
        for event in result.all_events:
            if event.is_failure:
                print(event.message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
