"""The HTTP side of every OpenAI-compatible server prunelens talks to (the LLM annotator's chat server, the
``server`` scorer's completions server): one client per server, which failures are worth retrying, and the
backoff between attempts. Callers keep their own request and reply logic."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.settings import setting

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


@dataclass(kw_only=True)
class ServerConnection:
    """How to reach an OpenAI-compatible completions server (the ``server`` scorer's and generator's options)."""

    base_url: str | None = setting(None, "server: the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                   "(default: $OPENAI_BASE_URL)")  # fmt: skip
    server_model: str | None = setting(None, "server: the model name sent (default: the first the server lists)",
                                       result=True)  # fmt: skip
    concurrency: int = setting(4, "server: requests in flight at once", minimum=1)
    timeout: float = setting(300.0, "server: seconds per request", minimum=0.1)
    max_retries: int = setting(3, "server: retries of a failed request, with exponential backoff", minimum=0)
    retry_delay: float = setting(1.0, "server: seconds before the first retry (doubled for each further one)",
                                 minimum=0)  # fmt: skip


class CompletionsClient:
    """The completions endpoint of ``connection``'s server, with retries; thread-safe (one serves every worker)."""

    def __init__(self, connection: ServerConnection):
        self.connection = connection
        self.url = base_url_of(connection.base_url)
        if self.url is None:
            raise PrunelensError("a server needs --base-url (or $OPENAI_BASE_URL)")
        self.client = openai_client(self.url, connection.timeout)
        self.model = connection.server_model
        self.reported_model: str | None = None  # the model name the server's replies carry

    def model_name(self) -> str:
        """``server_model``, else the first model the server lists (asked once); openai errors pass through."""
        if self.model is None:
            listed = [m.id for m in self.client.models.list()]
            if not listed:
                raise PrunelensError(f"the server at {self.url} lists no model; give --server-model")
            self.model = listed[0]
        return self.model

    def complete(self, refused=lambda error: False, **request):
        """The completion of ``request`` (the model added, asked of the server when not given), after retries; an
        openai error for which ``refused(error)`` holds is raised as it is, any other failure that outlasts the
        retries as a one-line PrunelensError."""
        import openai

        connection, reason = self.connection, ""
        for attempt in range(connection.max_retries + 1):
            if attempt:
                time.sleep(backoff_seconds(attempt, connection.retry_delay))
            try:
                response = self.client.completions.create(model=self.model_name(), **request)
            except openai.OpenAIError as error:
                if refused(error):
                    raise
                problem = classify(error, connection.timeout, True)
                if not isinstance(problem, Retry):
                    raise problem from None
                reason = str(problem)
                continue
            self.reported_model = response.model or self.reported_model
            return response
        attempts = connection.max_retries + 1
        raise PrunelensError(f"the server at {self.url} failed: {one_line(reason)} (after {attempts} attempt"
                             f"{'s' if attempts > 1 else ''})")  # fmt: skip
