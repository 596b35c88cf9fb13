"""JSON APIs over HTTP: pagination, rate limiting, retries with exponential backoff (httpx, tenacity).

Each page is fetched with retries on 429, 5xx, timeouts and connection errors (exponential
backoff from ``retries.backoff_seconds``, or the server's ``Retry-After`` when it sends one).
A page whose body is not JSON, or whose ``records_path`` is not a list of objects, fails the
load naming the page and its URL; nothing is written. Every record keeps the URL of its page in
``_source_page``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from strata import warehouse
from strata.errors import MalformedSourceError
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset, HttpSource
from strata.sources import Extract
from strata.sources.postgres import resolve_env

TEMP_TABLE = "__strata_http"
_ENV_IN_TEXT = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")


class TransientHttpError(Exception):
    """A response worth retrying (429 or 5xx)."""

    def __init__(self, response: httpx.Response):
        self.response = response
        super().__init__(f"HTTP {response.status_code} from {response.url}")


def _transient(err: BaseException) -> bool:
    return isinstance(err, TransientHttpError | httpx.TimeoutException | httpx.TransportError)


class _Wait:
    """Exponential backoff, or the server's Retry-After (seconds) when it is longer."""

    def __init__(self, source: HttpSource):
        self.exponential = wait_exponential(
            multiplier=source.retries.backoff_seconds, max=source.retries.max_backoff_seconds
        )
        self.cap = source.retries.max_backoff_seconds

    def __call__(self, state: RetryCallState) -> float:
        wait = self.exponential(state)
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, TransientHttpError):
            after = err.response.headers.get("Retry-After", "")
            if after.replace(".", "", 1).isdigit():
                wait = max(wait, min(float(after), self.cap))
        return wait


class PageFetcher:
    """Fetches pages with retries and a minimum interval between requests (the rate limit)."""

    def __init__(self, source: HttpSource, dataset: str):
        self.source = source
        #: headers that carry credentials (auth, and any header built from an environment variable)
        self.secret_headers: dict[str, str] = {}
        plain: dict[str, str] = {}
        for name, value in source.headers.items():
            resolved = _ENV_IN_TEXT.sub(lambda m: resolve_env(m.group(0), dataset) or "", value)
            (self.secret_headers if resolved != value else plain)[name] = resolved
        if source.auth is not None:
            token = resolve_env(source.auth.token, dataset)
            if source.auth.type == "bearer":
                self.secret_headers["Authorization"] = f"Bearer {token}"
            else:
                self.secret_headers[source.auth.header] = token or ""
        self.origin = _origin(httpx.URL(source.url))
        self.client = httpx.Client(
            headers=plain,
            timeout=source.timeout_seconds,
            follow_redirects=True,
            event_hooks={"request": [_refuse_link_local, self._credentials]},
        )
        self.interval = 1 / source.rate_limit_per_second if source.rate_limit_per_second else 0.0
        self.last_request = 0.0
        self.requests = 0
        self.retries = 0

    def _credentials(self, request: httpx.Request) -> None:
        """Add the credential headers to a request for the configured origin; strip them from any other.

        Runs for every request the client sends, redirects included: a ``next_link`` or a redirect
        to another host never receives the token (httpx itself only strips ``Authorization``).
        """
        same = _origin(request.url) == self.origin
        for name, value in self.secret_headers.items():
            if same:
                request.headers[name] = value
            else:
                request.headers.pop(name, None)

    def get(self, url: str, params: dict[str, Any] | None) -> httpx.Response:
        """GET ``url``; retries transient failures; raises the last error when attempts run out."""
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            wait=_Wait(self.source),
            stop=stop_after_attempt(self.source.retries.attempts),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.retries += 1
                return self._once(url, params)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, url: str, params: dict[str, Any] | None) -> httpx.Response:
        wait = self.last_request + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request = time.monotonic()
        self.requests += 1
        response = self.client.get(url, params=params)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientHttpError(response)
        response.raise_for_status()
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def _refuse_link_local(request: httpx.Request) -> None:
    """Refuse a request to a link-local address (169.254.0.0/16, fe80::/10): cloud metadata services.

    A dataset's URL, a ``next_link`` or a redirect could otherwise read the instance's credentials
    (``http://169.254.169.254/latest/meta-data/iam/...``) into a raw table. Checked for every
    request the client sends, on the addresses the host name resolves to.

    Raises:
        httpx.RequestError: the host is, or resolves to, a link-local address.
    """
    host = request.url.host
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return  # unresolvable: the request itself fails with httpx's own error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_link_local or host == "metadata.google.internal":
            raise httpx.RequestError(f"refused: {host} is a link-local (cloud metadata) address", request=request)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): the unit credentials are scoped to (RFC 6454)."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def dig(body: Any, path: str) -> Any:
    """The value at a dotted ``path`` in a JSON body ('' is the body itself); None if absent."""
    value = body
    for part in filter(None, path.split(".")):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def pages(
    fetcher: PageFetcher, source: HttpSource, params: dict[str, Any], dataset: str
) -> Iterator[tuple[int, str, list]]:
    """Yield ``(page number, URL, records)`` following the source's pagination."""
    pg = source.pagination
    url: str = source.url
    query: dict[str, Any] | None = dict(params)
    if pg.size_param and pg.page_size:
        query[pg.size_param] = pg.page_size
    if pg.type == "page":
        query[pg.page_param] = pg.start_page
    if pg.type == "offset":
        query[pg.offset_param], query[pg.limit_param] = 0, pg.page_size
    for number in range(1, pg.max_pages + 1):
        response = fetcher.get(url, query)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MalformedSourceError(dataset, f"page {number} ({response.url}) is not valid JSON: {err}") from err
        records = dig(body, source.records_path)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            where = f"'{source.records_path}'" if source.records_path else "the body"
            raise MalformedSourceError(
                dataset,
                f"page {number} ({response.url}): {where} is not a list of objects (got {type(records).__name__})",
            )
        yield number, str(response.url), records
        if pg.type == "none" or not records:
            return
        if pg.type == "page":
            query[pg.page_param] += 1
        elif pg.type == "offset":
            query[pg.offset_param] += len(records)
            if pg.page_size and len(records) < pg.page_size:
                return
        elif pg.type == "cursor":
            cursor = dig(body, pg.cursor_path or "")
            if cursor in (None, ""):
                return
            query[pg.cursor_param] = cursor
        elif pg.type == "next_link":
            link = dig(body, pg.next_link_path) if pg.next_link_path else response.links.get("next", {}).get("url")
            if not link:
                return
            url, query = str(response.url.join(link)), None  # the link carries its own query
    raise MalformedSourceError(dataset, f"more than max_pages={pg.max_pages} pages; raise the limit if expected")


def _records_by_partition(reader: dict, records: int) -> dict:
    """Records the API returned, per partition.

    Unpartitioned: the pages' own total. Partitioned: the reader's split, with any difference from
    that total put on the first partition (so ``row_accounting`` fails there).
    """
    if set(reader) == {None}:
        return {None: records}
    out = dict(reader)
    first = min((p for p in out if p is not None), default=None)
    out[first] = out.get(first, 0) + records - sum(reader.values())
    return out


def extract(con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None) -> Extract:
    """Fetch every page this run needs into a DuckDB temporary table.

    Raises:
        MalformedSourceError: a page is not JSON or has no list of records (names the page).
        TransientHttpError, httpx.HTTPError: the API kept failing after every retry.
        SourceConfigError: an environment variable the dataset references is not set.
    """
    source: HttpSource = dataset.source  # type: ignore[assignment]
    fill = window.placeholders() if window is not None else {}
    params = {k: v.format(**fill) for k, v in source.params.items()}
    fetcher = PageFetcher(source, dataset.name)
    count = records_total = 0
    handle, name = tempfile.mkstemp(suffix=".ndjson", prefix="strata-http-")
    path = Path(name)
    try:  # the file holds fetched records: it is removed however the load ends
        with open(handle, "w", encoding="utf-8") as tmp:
            for number, url, records in pages(fetcher, source, params, dataset.name):
                count = number
                for index, record in enumerate(records, start=1):
                    tmp.write(json.dumps({**record, "_source_page": url, "_source_row": index}, default=str) + "\n")
                records_total += len(records)
        con.execute(f"drop table if exists {TEMP_TABLE}")
        if records_total:
            con.execute(
                f"create temp table {TEMP_TABLE} as select * from "
                f"read_json({warehouse.literal(str(path))}, format = 'newline_delimited')"
            )
        else:
            cols = [f"{warehouse.quote(c.name)} {c.sql_type}" for c in dataset.columns]
            cols += ['"_source_page" varchar', '"_source_row" bigint']
            con.execute(f"create temp table {TEMP_TABLE} ({', '.join(cols)})")
    finally:
        fetcher.close()
        path.unlink(missing_ok=True)
    return Extract(
        relation=TEMP_TABLE,
        origin_column="_source_page",
        units=count,
        count_source=lambda reader: _records_by_partition(reader, records_total),
        metadata={
            "pages": count,
            "requests": fetcher.requests,
            "retries": fetcher.retries,
            "records": records_total,
        },
        cleanup=[TEMP_TABLE],
    )
