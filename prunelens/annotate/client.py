"""The one place prunelens talks to an OpenAI-compatible chat server (the LLM annotator and the judge).

``ChatClient.ask`` sends one chat completion asking for a JSON object (``response_format`` json_object,
temperature 0 unless the server refuses a temperature), parses the reply and hands it to a ``validate``
callback. A malformed or invalid reply is retried with the problem stated to the model; HTTP 408/409/429,
5xx, timeouts and connection errors are retried as they are; both with exponential backoff
(``retry_delay`` · 2^k), at most ``max_retries`` times, after which ``ReplyFailed`` carries the last
reason. Valid replies are cached on disk under a hash of model, messages and sampling parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import write_atomic
from prunelens.core.settings import setting
from prunelens.models import cache_root

T = TypeVar("T")
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
LOCAL_KEY = "local-server"  # sent to servers named by a base URL when no key is set: they take any key
RETRIED_STATUS = (408, 409, 429)  # and every 5xx
MAX_BACKOFF = 60.0  # seconds: the longest wait between two attempts


@dataclass(kw_only=True)
class LLMSettings:
    """How to reach the LLM (annotator or judge): declared once, shared by every command that asks one."""

    llm_model: str = setting("gpt-5-mini", "LLM: the model name sent to the server", result=True)
    base_url: str | None = setting(None, "LLM: an OpenAI-compatible server (default: $OPENAI_BASE_URL, else OpenAI)")
    cache_dir: Path | None = setting(None, "LLM: response cache (default: $PRUNELENS_CACHE/llm, ~/.cache/prunelens/llm)")
    no_cache: bool = setting(False, "LLM: neither read nor write the response cache", flag="--no-cache")
    max_retries: int = setting(3, "LLM: retries of a failed or malformed reply, with exponential backoff", minimum=0)
    retry_delay: float = setting(1.0, "LLM: seconds before the first retry (doubled for each further one)", minimum=0)
    timeout: float = setting(120.0, "LLM: seconds per request", minimum=0.1)
    temperature: float | None = setting(0.0, "LLM: sampling temperature (not sent to models that refuse it)", minimum=0)
    max_tokens: int | None = setting(None, "LLM: cap on reply tokens (default: the server's)", minimum=1)


class InvalidReply(Exception):
    """Raised by a ``validate`` callback: the reply parsed as JSON but is unusable; the message says why."""


class ReplyFailed(Exception):
    """No usable reply after all retries; the message is the last reason (one line)."""


def server_host(settings: LLMSettings) -> str:
    """The host the requests go to, as recorded with results (no path, no credentials)."""
    url = settings.base_url or os.environ.get(BASE_URL_ENV) or "https://api.openai.com/v1"
    return urlparse(url).hostname or url


def default_cache_dir() -> Path:
    return cache_root() / "llm"


def request_key(model: str, messages: list[dict], params: dict, server: str = "") -> str:
    """The cache key of one request: a hash of server, model, messages and sampling parameters."""
    text = json.dumps({"server": server, "model": model, "messages": messages, "params": params}, sort_keys=True,
                      ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def parse_json_object(text: str | None) -> dict:
    """A reply's JSON object (a surrounding ``` fence is allowed); InvalidReply otherwise."""
    if not text or not text.strip():
        raise InvalidReply("empty reply")
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except ValueError as error:
        raise InvalidReply(f"malformed JSON ({error}) in a reply starting {_one_line(text, 60)!r}") from None
    if not isinstance(value, dict):
        raise InvalidReply(f"expected a JSON object, got {type(value).__name__}")
    return value


def _one_line(text: Any, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ChatClient:
    """An ``openai.OpenAI`` client for ``settings`` (its own retries off: ``ask`` retries) with a disk cache.
    Thread-safe: one instance serves every worker of a run."""

    def __init__(self, settings: LLMSettings):
        import openai

        self.settings = settings
        base_url = settings.base_url or os.environ.get(BASE_URL_ENV) or None
        key = os.environ.get(API_KEY_ENV) or (LOCAL_KEY if base_url else None)
        if key is None:
            raise PrunelensError(f"set {API_KEY_ENV} to use OpenAI, or --base-url for a local OpenAI-compatible server")
        self.client = openai.OpenAI(api_key=key, base_url=base_url, timeout=settings.timeout, max_retries=0)
        self.cache_dir = None if settings.no_cache else Path(settings.cache_dir or default_cache_dir())
        self.send_temperature = settings.temperature is not None
        self.server = base_url or "https://api.openai.com/v1"  # part of the cache key: replies are per server

    def params(self) -> dict:
        """The sampling parameters requested (part of the cache key)."""
        params: dict[str, Any] = {"response_format": {"type": "json_object"}}
        if self.settings.temperature is not None:
            params["temperature"] = self.settings.temperature
        if self.settings.max_tokens is not None:
            params["max_completion_tokens"] = self.settings.max_tokens
        return params

    def ask(self, messages: list[dict], validate: Callable[[dict], T]) -> T:
        """``validate(reply JSON)`` of the first usable reply (from the cache or the server); ReplyFailed
        after ``max_retries`` retries; PrunelensError where the server refuses the request itself (bad
        key, unknown model, unreachable OpenAI), since every later request would fail alike."""
        params = self.params()
        key = request_key(self.settings.llm_model, messages, params, self.server)
        cached = self._read_cache(key)
        if cached is not None:
            try:
                return validate(parse_json_object(cached))
            except InvalidReply:
                pass  # written under another validator: ask again
        conversation, reason = list(messages), ""
        for attempt in range(self.settings.max_retries + 1):
            if attempt:
                time.sleep(min(MAX_BACKOFF, self.settings.retry_delay * 2 ** (attempt - 1)))
            try:
                text = self._complete(conversation, params)
            except _Retry as retry:
                reason = str(retry)
                continue
            try:
                value = validate(parse_json_object(text))
            except InvalidReply as invalid:
                reason = f"invalid reply: {invalid}"
                conversation = [*messages, {"role": "assistant", "content": text or ""},
                                {"role": "user", "content": f"That reply was not usable: {invalid}. Reply again with "
                                                            "the complete JSON object only."}]  # fmt: skip
                continue
            self._write_cache(key, text)
            return value
        attempts = self.settings.max_retries + 1
        raise ReplyFailed(f"{_one_line(reason)} (after {attempts} attempt{'s' if attempts > 1 else ''})")

    def _complete(self, messages: list[dict], params: dict) -> str | None:
        """One request's reply text; _Retry for errors worth retrying."""
        import openai

        request = dict(params)
        if not self.send_temperature:
            request.pop("temperature", None)
        try:
            response = self.client.chat.completions.create(model=self.settings.llm_model, messages=messages, **request)
        except openai.APITimeoutError:
            raise _Retry(f"timed out after {self.settings.timeout:g} s") from None
        except openai.APIConnectionError as error:
            if self.settings.base_url or os.environ.get(BASE_URL_ENV):
                raise _Retry(f"connection failed ({_one_line(error)})") from None
            raise PrunelensError(f"cannot reach OpenAI ({_one_line(error)}); --base-url names a local server") from None
        except openai.APIStatusError as error:
            status = error.status_code
            if status == 400 and "temperature" in str(error).lower() and self.send_temperature:
                self.send_temperature = False  # e.g. gpt-5-mini takes only its default temperature
                return self._complete(messages, params)
            if status in RETRIED_STATUS or status >= 500:
                raise _Retry(f"HTTP {status} ({_one_line(error, 160)})") from None
            raise PrunelensError(f"the server refused the request: HTTP {status} ({_one_line(error, 200)})") from None
        except openai.APIError as error:  # e.g. a 200 whose body is not a chat completion
            raise _Retry(f"unusable response ({_one_line(error, 160)})") from None
        if not response.choices:
            raise _Retry("a reply without choices")
        return response.choices[0].message.content

    def _cache_file(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> str | None:
        if self.cache_dir is None or not self._cache_file(key).exists():
            return None
        try:
            return json.loads(self._cache_file(key).read_text(encoding="utf-8"))["reply"]
        except (ValueError, KeyError, OSError):
            return None  # a damaged entry is asked again and overwritten

    def _write_cache(self, key: str, text: str) -> None:
        if self.cache_dir is None:
            return
        entry = json.dumps({"model": self.settings.llm_model, "reply": text}, ensure_ascii=False)
        try:
            write_atomic(self._cache_file(key), entry)
        except OSError:
            pass  # the cache is best effort: an unwritable one costs repeated requests, not the run


class _Retry(Exception):
    """A request failed in a way worth retrying; the message is the reason."""
