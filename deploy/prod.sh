#!/usr/bin/env bash
# The production process layout on one machine: PostgreSQL instance storage, the strata gRPC code
# server, dagster-daemon and dagster-webserver, as separate processes wired by
# deploy/workspace.grpc.yaml. `make prod` runs it; Ctrl-C stops everything it started.
#
# Postgres: set DAGSTER_PG_HOST (and DAGSTER_PG_PORT/DB/USER/PASSWORD) to use a server you run.
# Without DAGSTER_PG_HOST a local one is started from Debian's `postgresql` package binaries in
# $STRATA_DATA_DIR/prod/pg (port $STRATA_PROD_PG_PORT, default 5433; trust auth on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${STRATA_DATA_DIR:?set by make prod}"
BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-3000}
GRPC_PORT=4266   # must match deploy/workspace.grpc.yaml
PROD=$STRATA_DATA_DIR/prod
PG_BIN=${STRATA_PG_BIN:-/usr/lib/postgresql/15/bin}
export DAGSTER_HOME=${DAGSTER_HOME_PROD:-$PROD/dagster_home}
mkdir -p "$DAGSTER_HOME" "$PROD/logs"
cp deploy/dagster.prod.yaml "$DAGSTER_HOME/dagster.yaml"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 20); do   # up to 10 s to stop cleanly, then kill
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -n "${PG_DATA:-}" ]; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null || true; fi
}
trap cleanup EXIT INT TERM

as_pg() {  # initdb refuses to run as root: run PostgreSQL as the postgres user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -z "${DAGSTER_PG_HOST:-}" ]; then
  [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL binaries not in $PG_BIN: apt-get install postgresql" >&2; exit 1; }
  PG_ROOT=$(mktemp -d /tmp/strata-prod-pg.XXXXXX)   # the postgres user must reach it
  PG_DATA=$PG_ROOT/data
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_ROOT"
  export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=${STRATA_PROD_PG_PORT:-5433} \
         DAGSTER_PG_DB=postgres DAGSTER_PG_USER=strata DAGSTER_PG_PASSWORD=""
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U strata --auth=trust -E UTF8 >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_ROOT/postgres.log" -w \
    -o "-p $DAGSTER_PG_PORT -k $PG_ROOT -c listen_addresses=127.0.0.1" start >/dev/null
  echo "PostgreSQL on 127.0.0.1:$DAGSTER_PG_PORT (data in $PG_DATA)"
fi
export DAGSTER_PG_PORT=${DAGSTER_PG_PORT:-5432} DAGSTER_PG_DB=${DAGSTER_PG_DB:-postgres} \
       DAGSTER_PG_PASSWORD=${DAGSTER_PG_PASSWORD:-}

# STRATA_WAREHOUSE=ducklake: the warehouse is a DuckLake whose catalog is a database of its own
# (STRATA_LAKE_PG_DATABASE, default strata_lake) on the same PostgreSQL server, unless
# STRATA_LAKE_CATALOG names another; data under $STRATA_LAKE_DATA_PATH (default
# $STRATA_DATA_DIR/lake/). Backfills run in concurrent chunks (STRATA_BACKFILL_CHUNK_DAYS,
# default 365 here).
if [ "${STRATA_WAREHOUSE:-duckdb}" = ducklake ]; then
  if [ -z "${STRATA_LAKE_CATALOG:-}" ]; then
    export STRATA_LAKE_PG_HOST=${STRATA_LAKE_PG_HOST:-$DAGSTER_PG_HOST} \
           STRATA_LAKE_PG_PORT=${STRATA_LAKE_PG_PORT:-$DAGSTER_PG_PORT} \
           STRATA_LAKE_PG_USER=${STRATA_LAKE_PG_USER:-$DAGSTER_PG_USER} \
           STRATA_LAKE_PG_DATABASE=${STRATA_LAKE_PG_DATABASE:-strata_lake}
    PGPASSWORD=$DAGSTER_PG_PASSWORD "$BIN/python" - <<'PY'
import os, psycopg2
con = psycopg2.connect(host=os.environ["STRATA_LAKE_PG_HOST"], port=os.environ["STRATA_LAKE_PG_PORT"],
                       user=os.environ["STRATA_LAKE_PG_USER"], dbname="postgres")
con.autocommit = True
cur = con.cursor()
name = os.environ["STRATA_LAKE_PG_DATABASE"]
cur.execute("select 1 from pg_database where datname = %s", [name])
if not cur.fetchone():
    cur.execute(f'create database "{name}"')
    print(f"lake catalog database {name} created")
PY
  fi
  export STRATA_BACKFILL_CHUNK_DAYS=${STRATA_BACKFILL_CHUNK_DAYS:-365}
fi
"$BIN/strata" prepare   # the dbt manifest; with a lake, its extensions and catalog

"$BIN/dagster" api grpc --module-name strata.definitions --attribute defs \
  --host 127.0.0.1 --port "$GRPC_PORT" >"$PROD/logs/code_server.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
  "$BIN/dagster" api grpc-health-check --port "$GRPC_PORT" >/dev/null 2>&1 && break
  sleep 1
done
"$BIN/dagster" api grpc-health-check --port "$GRPC_PORT" >/dev/null || { echo "code server did not start; see $PROD/logs/code_server.log" >&2; exit 1; }
echo "code server on 127.0.0.1:$GRPC_PORT"

"$BIN/dagster-daemon" run -w deploy/workspace.grpc.yaml >"$PROD/logs/daemon.log" 2>&1 &
pids+=($!)
"$BIN/dagster-webserver" -w deploy/workspace.grpc.yaml -h "$HOST" -p "$PORT" >"$PROD/logs/webserver.log" 2>&1 &
pids+=($!)
echo "daemon and webserver started; UI on http://$HOST:$PORT (logs in $PROD/logs)"
wait -n "${pids[@]}"
echo "a process exited; stopping the others (see $PROD/logs)" >&2
exit 1
