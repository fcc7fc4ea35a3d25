"""The HTTP side of every OpenAI-compatible server prunelens talks to (the LLM annotator's chat server, the
``server`` scorer's completions server): one client per server, which failures are worth retrying, and the
backoff between attempts. Callers keep their own request and reply logic."""

from __future__ import annotations

import os
from typing import Any

from prunelens.core.errors import PrunelensError

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
LOCAL_KEY = "local-server"  # sent to servers named by a base URL when no key is set: they take any key
RETRIED_STATUS = (408, 409, 429)  # and every 5xx
MAX_BACKOFF = 60.0  # seconds: the longest wait between two attempts


class Retry(Exception):
    """A request failed in a way worth retrying; the message is the reason."""


def one_line(text: Any, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def base_url_of(base_url: str | None) -> str | None:
    """The server a setting names: itself, else ``$OPENAI_BASE_URL``, else None (OpenAI)."""
    return base_url or os.environ.get(BASE_URL_ENV) or None


def openai_client(base_url: str | None, timeout: float):
    """An ``openai.OpenAI`` client for ``base_url`` (see ``base_url_of``) with its own retries off: callers retry.
    A local server needs no key; OpenAI itself needs ``$OPENAI_API_KEY`` (a one-line PrunelensError otherwise)."""
    import openai

    url = base_url_of(base_url)
    key = os.environ.get(API_KEY_ENV) or (LOCAL_KEY if url else None)
    if key is None:
        raise PrunelensError(f"set {API_KEY_ENV} to use OpenAI, or --base-url for a local OpenAI-compatible server")
    return openai.OpenAI(api_key=key, base_url=url, timeout=timeout, max_retries=0)


def classify(error: Exception, timeout: float, named_server: bool) -> Exception:
    """What an ``openai`` exception means for the caller: ``Retry`` (timeouts, connection failures to a named
    server, HTTP 408/409/429 and 5xx, unusable bodies) or a one-line PrunelensError (the request itself is
    refused, or OpenAI cannot be reached), since every later request would fail alike."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return Retry(f"timed out after {timeout:g} s")
    if isinstance(error, openai.APIConnectionError):
        if named_server:
            return Retry(f"connection failed ({one_line(error)})")
        return PrunelensError(f"cannot reach OpenAI ({one_line(error)}); --base-url names a local server")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status in RETRIED_STATUS or status >= 500:
            return Retry(f"HTTP {status} ({one_line(error, 160)})")
        return PrunelensError(f"the server refused the request: HTTP {status} ({one_line(error, 200)})")
    if isinstance(error, openai.APIError):  # e.g. a 200 whose body is not the expected object
        return Retry(f"unusable response ({one_line(error, 160)})")
    return error


def backoff_seconds(attempt: int, retry_delay: float) -> float:
    """The wait before attempt ``attempt`` (1 = the first retry): ``retry_delay`` · 2^(attempt−1), at most a minute."""
    return min(MAX_BACKOFF, retry_delay * 2 ** (attempt - 1))
