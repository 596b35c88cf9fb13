# The Strata code-location image: the strata package, the dbt project with its manifest, and the
# registry. It serves definitions over gRPC (`dagster api grpc`); the webserver and the daemon
# run Dagster's own images against the same instance (see docs/deploy.md).
# No secrets are baked in: connection settings come from the environment at run time.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/strata

# Pinned dependencies first, so that code changes reuse this layer.
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt

COPY pyproject.toml README.md workspace.yaml dagster.yaml ./
COPY platform platform
COPY dbt dbt
COPY assets_config assets_config
COPY deploy deploy

# Install the package and prepare the dbt manifest at build time (dbt parse needs no database).
RUN pip install --no-deps -e . \
    && STRATA_WAREHOUSE_PATH=/tmp/parse.duckdb dbt parse --project-dir dbt --profiles-dir dbt --quiet \
    && rm -rf /tmp/parse.duckdb dbt/logs

RUN groupadd --gid 10001 strata \
    && useradd --create-home --uid 10001 --gid 10001 strata \
    && mkdir -p /data /opt/dagster/home \
    && chown -R strata:strata /data /opt/dagster/home /opt/strata/dbt

USER 10001:10001
ENV STRATA_DATA_DIR=/data \
    DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 \
    DAGSTER_EVENT_BATCH_SIZE=1000

EXPOSE 4266
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "--port", "4266"]
CMD ["dagster", "api", "grpc", "--module-name", "strata.definitions", "--attribute", "defs", \
     "--host", "0.0.0.0", "--port", "4266"]
