"""The README's code runs as printed: its Python blocks, and the `prunelens compress` and `distill` commands."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.slow
def test_python_blocks_run_as_printed(tmp_path):
    rankings, dynamics = blocks("python")  # in order, in one folder: the second continues the first
    result = subprocess.run([sys.executable, "-c", rankings], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "[-" in result.stdout and result.stdout.splitlines()[-1].startswith("(")
    assert "prune [1/1]" in result.stderr  # progress goes to stderr, results to stdout
    result = subprocess.run([sys.executable, "-c", dynamics], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert header.startswith("| ρ → ρ′ |") and "local" in header and "uniform" in header
    assert "| 1 → 0.9 | 1 |" in result.stdout
    assert (tmp_path / "rank_dynamics.png").stat().st_size > 0


def test_compress_commands_run_as_printed(tmp_path):
    [block] = [b for b in blocks("bash") if "prunelens compress" in b]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for keep in ("0.5", "0.7", "0.9"):
        assert len((tmp_path / "runs" / "uniform-compressed" / f"keep{keep}.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_distill_commands_run_as_printed(tmp_path):
    import json

    [block] = [b for b in blocks("bash") if "prunelens distill" in b]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "runs" / "teach-arith" / "chains.jsonl").read_text().splitlines()) == 8
    assert json.loads((tmp_path / "runs" / "eval-arith" / "evaluation.json").read_text())["n"] == 4
    assert json.loads((tmp_path / "runs" / "distill-cpu.json").read_text())["dataset"] == "arith"
