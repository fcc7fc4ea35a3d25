"""Local OpenAI-compatible servers for the benchmarks and tests: any server command started, waited for and stopped
(``served``), and llama.cpp's (llama-cpp-python's ``python -m llama_cpp.server``, the ``llamacpp`` extra) on a GGUF
alias as shipped, quantised (``llama_server``), on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.models import alias_gguf

INSTALL_HINT = "pip install 'prunelens[llamacpp]' (builds llama.cpp: needs a C++ compiler; make setup installs it)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(command: list[str], port: int, name: str, log: Path | None = None, startup_seconds: float = 300.0,
           env: dict[str, str] | None = None) -> Iterator[str]:  # fmt: skip
    """Run ``command`` (a server listening on 127.0.0.1:``port``) and yield its base URL once ``/v1/models``
    answers; stopped on exit. Its output goes to ``log`` (else discarded); a server that exits or does not answer
    within ``startup_seconds`` is a one-line PrunelensError naming it (``name``)."""
    output = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if process.poll() is not None:
                raise PrunelensError(f"{name} exited with code {process.returncode} while starting"
                                     + (f" (see {log})" if log else ""))  # fmt: skip
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise PrunelensError(f"{name} did not answer within {startup_seconds:g} s") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            output.close()


@contextmanager
def llama_server(alias: str = "smollm2-135m", threads: int = 1, context: int = 2048, log: Path | None = None,
                 startup_seconds: float = 300.0) -> Iterator[str]:  # fmt: skip
    """The base URL of a llama.cpp server on ``alias``'s GGUF with every position's logits kept (``--logits_all``,
    which echoed log-probs need), ``threads`` CPU threads and ``context`` positions; the model is served under the
    alias's name."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise PrunelensError(f"the llama.cpp server needs llama-cpp-python: {INSTALL_HINT}")
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(alias_gguf(alias)), "--model_alias", alias,
               "--logits_all", "true", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context),
               "--n_threads", str(threads), "--n_threads_batch", str(threads)]  # fmt: skip
    with served(command, port, "the llama.cpp server", log, startup_seconds) as url:
        yield url
