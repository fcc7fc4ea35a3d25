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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from prunelens.core.jsonl import write_atomic
from prunelens.core.openai_http import Retry, backoff_seconds, base_url_of, classify, one_line, openai_client
from prunelens.core.settings import setting
from prunelens.models import cache_root

T = TypeVar("T")


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
    url = base_url_of(settings.base_url) or "https://api.openai.com/v1"
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
        raise InvalidReply(f"malformed JSON ({error}) in a reply starting {one_line(text, 60)!r}") from None
    if not isinstance(value, dict):
        raise InvalidReply(f"expected a JSON object, got {type(value).__name__}")
    return value


class ChatClient:
    """An ``openai.OpenAI`` client for ``settings`` (its own retries off: ``ask`` retries) with a disk cache.
    Thread-safe: one instance serves every worker of a run."""

    def __init__(self, settings: LLMSettings):
        self.settings = settings
        base_url = base_url_of(settings.base_url)
        self.client = openai_client(base_url, settings.timeout)
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
                time.sleep(backoff_seconds(attempt, self.settings.retry_delay))
            try:
                text = self._complete(conversation, params)
            except Retry as retry:
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
        raise ReplyFailed(f"{one_line(reason)} (after {attempts} attempt{'s' if attempts > 1 else ''})")

    def _complete(self, messages: list[dict], params: dict) -> str | None:
        """One request's reply text; Retry for errors worth retrying."""
        import openai

        request = dict(params)
        if not self.send_temperature:
            request.pop("temperature", None)
        try:
            response = self.client.chat.completions.create(model=self.settings.llm_model, messages=messages, **request)
        except openai.OpenAIError as error:
            refused_temperature = isinstance(error, openai.BadRequestError) and "temperature" in str(error).lower()
            if refused_temperature and self.send_temperature:
                self.send_temperature = False  # e.g. gpt-5-mini takes only its default temperature
                return self._complete(messages, params)
            raise classify(error, self.settings.timeout, base_url_of(self.settings.base_url) is not None) from None
        if not response.choices:
            raise Retry("a reply without choices")
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
