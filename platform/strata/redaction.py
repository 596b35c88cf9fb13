"""Redacting secrets from text that goes to logs and alerts: URL user-info, token-like query values, headers.

Rules (after OWASP's Logging Cheat Sheet, "data to exclude": access tokens, passwords, connection
strings, https://cheatsheetseries.owasp.org/cheatsheets/Logging_Cheat_Sheet.html):

* ``https://user:pass@host/...`` loses its user-info;
* a query parameter whose name looks like a credential (token, key, secret, signature, password,
  auth, code, sig) keeps its name and loses its value;
* ``Bearer <token>``, ``Basic <credentials>`` and ``Authorization: ...`` lose the credential;
* a webhook URL (:func:`origin_only`) is shown as its origin: its path is the secret (Slack,
  Teams and most incoming webhooks carry the key in the path).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_NAME = re.compile(r"(token|key|secret|sig|signature|password|passwd|pwd|auth|credential|code)", re.IGNORECASE)
_URL = re.compile(r"\bhttps?://[^\s\"'<>]+", re.IGNORECASE)
_SCHEME_CREDENTIAL = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"(authorization|x-api-key|api-key)(\s*[:=]\s*)[^\s,;]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without user-info and with credential-like query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if parts.username or parts.password else parts.netloc
    query = urlencode(
        [(k, MASK if SECRET_NAME.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def origin_only(url: str) -> str:
    """``scheme://host[:port]/***``: a webhook URL whose path is its secret."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/{MASK}"
    except ValueError:
        return MASK


def redact(text: str) -> str:
    """``text`` with every URL passed through :func:`redact_url` and credentials in headers masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
