"""A scripted OpenAI-compatible completions server on 127.0.0.1 for the ``server`` scorer's tests: it computes
prompt log-probs with a real (tiny) model and answers in vLLM's ``prompt_logprobs`` shape, the classic ``echo``
shape, or, like llama-cpp-python's server, only for text prompts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

MODEL_NAME = "tiny-scripted"


class CompletionsServer:
    """``answers``: the protocols it speaks ("prompt_logprobs", "echo"); ``text_only``: token-id prompts get HTTP
    422 and text prompts are tokenised with ``tokenizer`` (a leading BOS is left out of the echo, as llama-cpp-python
    does); ``failures``: HTTP statuses answered to the first requests, in order; ``completion(body)``: the
    (text, finish_reason) of each completion ("x", "length" by default). ``bodies`` keeps every request."""

    def __init__(self, model, tokenizer=None, answers=("prompt_logprobs", "echo"), text_only=False, failures=(),
                 completion=None):  # fmt: skip
        self.model, self.tokenizer, self.answers, self.text_only = model, tokenizer, set(answers), text_only
        self.failures, self.bodies, self.lock = list(failures), [], threading.Lock()
        self.completion = completion or (lambda body: ("x", "length"))

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "me"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*server.complete(body))

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def logprobs(self, ids: list[int]) -> list[float | None]:
        """None for the first position, then log p(ids[t] | ids[:t])."""
        with torch.no_grad():
            values = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].double(), -1)
        return [None] + [values[t - 1, ids[t]].item() for t in range(1, len(ids))]

    def complete(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.bodies.append(body)
            if self.failures:
                return self.failures.pop(0), {"error": {"message": "scripted failure", "type": "server_error"}}
        prompts = body["prompt"]
        text = isinstance(prompts, str)
        if text != self.text_only:
            return 422, {"detail": [{"msg": "Input should be a valid string" if self.text_only else "token ids only"}]}
        if text:
            prompts = [prompts]
        elif prompts and isinstance(prompts[0], int):
            prompts = [prompts]
        choices = [self.choice(i, prompt, body) for i, prompt in enumerate(prompts)]
        usage = {"prompt_tokens": 0, "completion_tokens": len(choices), "total_tokens": len(choices)}  # one token each
        return 200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": MODEL_NAME, "choices": choices,
                     "usage": usage}  # fmt: skip

    def choice(self, index: int, prompt, body: dict) -> dict:
        text, finish = self.completion(body)
        echoed = prompt if isinstance(prompt, str) and body.get("echo") else ""
        choice = {"index": index, "text": echoed + text, "finish_reason": finish, "logprobs": None}
        if not ("prompt_logprobs" in body or body.get("echo")):
            return choice
        ids = self.tokenizer(prompt)["input_ids"] if isinstance(prompt, str) else list(prompt)
        values = self.logprobs(ids)
        if "prompt_logprobs" in body and "prompt_logprobs" in self.answers:
            choice["prompt_logprobs"] = [None] + [{str(ids[t]): {"logprob": v, "rank": 1, "decoded_token": "?"}}
                                                  for t, v in enumerate(values) if t > 0]  # fmt: skip
        if body.get("echo") and "echo" in self.answers:
            shown = list(range(len(ids)))
            if isinstance(prompt, str) and ids[0] == self.tokenizer.bos_token_id:
                shown = shown[1:]  # llama-cpp-python echoes no leading BOS
            choice["logprobs"] = {"tokens": ["?"] * (len(shown) + 1), "text_offset": list(range(len(shown) + 1)),
                                  "token_logprobs": [values[s] if k else None for k, s in enumerate(shown)] + [-1.0],
                                  "top_logprobs": None}  # fmt: skip
        return choice
