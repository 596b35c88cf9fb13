"""Alerts: one JSON object per event, appended to a log file or posted to a webhook.

The payload is a JSON object with ``text`` (one line a person reads; Slack and Teams incoming
webhooks show it as the message) and the structured fields the caller gives (run id, job,
partition, error). Webhook delivery retries transient failures (connection errors, 429, 5xx)
with exponential backoff and jitter (tenacity); if it still fails, the alert is written to the
log file instead, so that it is never lost.

This module knows nothing of Dagster.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from strata.redaction import origin_only, redact

WEBHOOK_ENV = "STRATA_ALERT_WEBHOOK_URL"


def _transient(err: BaseException) -> bool:
    if isinstance(err, httpx.HTTPStatusError):
        return err.response.status_code == 429 or err.response.status_code >= 500
    return isinstance(err, httpx.TransportError)


@retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.5, max=10),
    reraise=True,
)
def _post(url: str, payload: dict, timeout_seconds: float) -> None:
    httpx.post(url, json=payload, timeout=timeout_seconds).raise_for_status()


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def send(text: str, fields: dict, log_path: Path, webhook_url: str | None = None, timeout_seconds: float = 10) -> str:
    """Deliver one alert; return where it went (``webhook`` or the log file's path).

    ``webhook_url`` defaults to ``$STRATA_ALERT_WEBHOOK_URL``. The log file gets one JSON line
    per alert (``{"at": ISO-8601 UTC, "text": ..., **fields}``); its folder is created if needed.
    Every string written to the log is redacted (:mod:`strata.redaction`); the webhook URL appears
    only as its origin.

    Raises:
        OSError: the log file cannot be written (and the webhook, if any, failed).
    """
    payload = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "text": text, **fields}
    url = webhook_url if webhook_url is not None else os.environ.get(WEBHOOK_ENV)
    if url:
        try:
            _post(url, payload, timeout_seconds)
            return "webhook"
        except httpx.HTTPError as err:
            payload["webhook_error"] = f"{origin_only(url)}: {str(err).replace(url, origin_only(url))}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(_redacted(payload), default=str) + "\n")
    return str(log_path)
