"""Test helpers for the LLM annotator and judge: a scripted OpenAI-compatible chat-completions server on
127.0.0.1, and small rankings folders of two hand-made chains."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prunelens.core.jsonl import append_jsonl
from prunelens.core.ranking import Ranking

CHAINS = {
    "a": "Natalia sold 48 clips. She sold half as many in May, so 48 / 2 = 24.",
    "b": "Then we add them: 48 + 24 = 72 clips in total.",
}


def make_ranking(chain_id: str, text: str) -> Ranking:
    """A ranking whose tokens are whitespace-led pieces (offsets cover the non-space part), removed from the end."""
    pieces = re.findall(r"\s*\S+", text)
    offsets, at = [], 0
    for piece in pieces:
        start = at + len(piece) - len(piece.lstrip())
        offsets.append([start, at + len(piece)])
        at += len(piece)
    n = len(pieces)
    return Ranking(id=chain_id, method="truncation", model="stub-tokenizer", reasoning=text,
                   reasoning_ids=list(range(100, 100 + n)), reasoning_tokens=pieces, offsets=offsets,
                   deletion_order=list(range(n - 1, -1, -1)), question="How many clips?", answer="72")  # fmt: skip


def write_rankings(folder: Path) -> Path:
    """A rankings folder holding ``make_ranking`` of every chain in CHAINS."""
    folder.mkdir(parents=True)
    for chain_id, text in CHAINS.items():
        append_jsonl(folder / "rankings.jsonl", make_ranking(chain_id, text).to_dict())
    return folder


def isolate_from_openai(monkeypatch, tmp_path) -> None:
    """No OpenAI key or base URL from the environment; the response cache under ``tmp_path``."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("PRUNELENS_CACHE", str(tmp_path / "cache"))


@dataclass
class Reply:
    """An HTTP answer: a chat completion whose message is ``content``, or an error ``status``; sent after
    ``delay`` seconds."""

    content: str | None = None
    status: int = 200
    delay: float = 0.0


def ok(content: str, delay: float = 0.0) -> Reply:
    return Reply(content=content, delay=delay)


def error(status: int, message: str = "scripted error") -> Reply:
    return Reply(content=message, status=status)


def task(body: dict) -> str:
    """The text of a request's first user message: the task (later ones ask for a corrected reply)."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def numbered_words(body: dict) -> list[str]:
    """The words of an annotation request, read back from its ``<index><TAB><word>`` lines."""
    lines = [line.split("\t", 1) for line in task(body).splitlines() if "\t" in line]
    return [word for index, word in lines if index.isdigit()]


class ScriptedServer:
    """Each request is answered by the next entry of the script (the last entry answers every later request);
    an entry is a ``Reply`` or a function of the request body returning one. ``requests`` records every
    request body, so tests count requests and read what was sent. A context manager: it stops on exit."""

    def __init__(self, script: list[Reply | Callable[[dict], Reply]]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    entry = server.script[min(len(server.requests), len(server.script) - 1)]
                    server.requests.append(body)
                reply = entry(body) if callable(entry) else entry
                if reply.delay and server.stopping.wait(reply.delay):
                    return
                if reply.status == 200:
                    payload = {"id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                               "model": body.get("model", ""), "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": reply.content}}]}  # fmt: skip
                else:
                    payload = {"error": {"message": reply.content, "type": "scripted", "code": reply.status}}
                data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up on a slow reply closes the connection: not an error here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def word_label(word: str) -> str:
    """The scripted annotator's rule: numbers and operators SymbMath, pronouns CoRef, the rest Grammar."""
    if re.fullmatch(r"\d+|[+/=*-]", word):
        return "SymbMath"
    return "CoRef" if word.lower() in {"she", "we", "them"} else "Grammar"


def labels_reply(body: dict, skip: int | None = None, delay: float = 0.0) -> Reply:
    """A valid reply for the words of ``body`` (index ``skip`` left out, making it invalid)."""
    entries = [{"i": i, "word": w, "label": word_label(w)} for i, w in enumerate(numbered_words(body)) if i != skip]
    return ok(json.dumps({"labels": entries}), delay=delay)
