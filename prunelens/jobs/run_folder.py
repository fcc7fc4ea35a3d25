"""A run's output folder and its run.json: what a resumed run must match, written once the first result exists."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import write_atomic
from prunelens.core.settings import differences, identity

CONFIG_NAME = "run.json"


def read_settings(out_dir: Path) -> dict | None:
    """An output folder's run.json (None if absent); runs from before run.json named its job were prunes."""
    path = Path(out_dir) / CONFIG_NAME
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        raise PrunelensError(f"{path} is not valid JSON; restore it or choose another --out") from None
    saved.setdefault("job", "prune")
    return saved


def check_settings(out_dir: Path, job: str, config) -> None:
    """Refuse to resume into a folder whose results came from other settings or another job. A setting
    that a run.json predates counts as its default (the behaviour before the setting existed)."""
    saved = read_settings(out_dir)
    if saved is None:
        return
    if saved["job"] != job:
        raise PrunelensError(f"{out_dir} holds a `{saved['job']}` run, not `{job}`; choose another --out")
    changed = differences(saved.get("identity", {}), identity(config), type(config))
    if changed:
        listed = ", ".join(f"{key}={then!r} (now {now!r})" for key, then, now in changed)
        raise PrunelensError(f"{out_dir} holds a run with other settings: {listed}; choose another --out")


def check_writable(out_dir: Path) -> None:
    """Refuse, in one line and before any work, an output folder that is a file or cannot be written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PrunelensError(f"--out {out_dir}: is a file, not a folder")
    existing = next(p for p in (out_dir, *out_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise PrunelensError(f"--out {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PrunelensError(f"--out {out_dir}: {existing} is not writable")


def write_settings(out_dir: Path, saved: dict) -> None:
    """Write run.json atomically (a kill never leaves half a file)."""
    write_atomic(Path(out_dir) / CONFIG_NAME, json.dumps(saved, indent=2, default=str))


def record_settings(out_dir: Path, job: str, config) -> None:
    """Write run.json (job, result settings, all settings) unless it exists."""
    if not (Path(out_dir) / CONFIG_NAME).exists():
        write_settings(out_dir, {"job": job, "identity": identity(config), "config": asdict(config)})
