"""Credentials never leave the process: the one place URLs and texts are redacted.

An index URL may carry a password (``https://user:pass@host/simple``) or a
token in its query (``?token=...``). Everything the toolkit prints, logs, writes
as JSON or hands to a build (args, labels, bake files) goes through ``redact``
or ``redact_url`` first; ``has_credentials`` lets a command refuse a URL whose
credentials would otherwise end up somewhere they persist.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "has_credentials", "redact", "redact_json", "redact_url"]

MASK = "***"

# Query parameters that carry secrets in index URLs (Artifactory, GitLab, S3, Azure, ...).
_SECRET_PARAMS = re.compile(
    r"(?i)^(.*token.*|.*secret.*|.*passw.*|.*key.*|auth.*|sig|signature|x-amz-signature|"
    r"x-amz-credential|x-amz-security-token|credential.*|session)$"
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"<>]+@")


def _secret_param(name: str) -> bool:
    return bool(_SECRET_PARAMS.match(name))


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries user info or a token-like query parameter."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return True
    return any(_secret_param(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True))


def redact_url(url: str) -> str:
    """``url`` with user info and token-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(MASK + "@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(name) for name, _ in pairs):
            query = urlencode([(n, MASK if _secret_param(n) else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """Every URL in ``text`` redacted (messages, log lines, command echoes)."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def redact_json(value: Any) -> Any:
    """A JSON document with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, dict):
        return {redact(str(key)): redact_json(item) for key, item in value.items()}
    return value
