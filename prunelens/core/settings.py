"""Settings declared once: a dataclass field with metadata gives the CLI option, the resume check
and the default output-folder name.

``setting(default, help, result=True, name=...)``: ``result`` marks a setting that changes results (a
resumed run must use the same value; ``identity`` collects them); ``name`` is how a non-default value
appears in the default output-folder name (``"k"`` → ``k0.5``; ``""`` → the bare value), and ``always``
shows it even at its default; ``prefix`` marks settings the folder name spells out already (model, data);
``only_for`` limits a setting to some values of the config's ``method`` (elsewhere it is ignored, so it
neither names folders nor blocks resumes). ``cli_type`` / ``parse`` convert a CLI string (e.g. ids);
``argument`` makes the setting a positional CLI argument instead of an option. ``input`` marks a file or folder the
run reads: its content, not its path, is part of what a result was computed from (``prunelens.core.provenance``;
``input="examples"`` for a chains file, whose records are the examples themselves).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from prunelens.core.errors import PrunelensError

THREADS_HELP = "torch CPU threads (default: OMP_NUM_THREADS, else all cores; 1 when sharing cores)"


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    result: bool = False,
    name: str | None = None,
    always: bool = False,
    flag: str | None = None,
    cli: bool = True,
    argument: bool = False,
    prefix: bool = False,
    only_for: tuple[str, ...] | None = None,
    cli_type: type | None = None,
    parse: Callable[[Any], Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    default_factory: Callable[[], Any] | None = None,
    input: bool | str = False,
) -> Any:
    """A dataclass field carrying its help, whether it affects results, and how it shows in names."""
    metadata = {"help": help, "result": result, "name": name, "always": always, "flag": flag, "cli": cli,
                "argument": argument, "prefix": prefix, "only_for": only_for, "cli_type": cli_type, "parse": parse,
                "min": minimum, "max": maximum, "input": input}  # fmt: skip
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def result_fields(config) -> list[Field]:
    """The result-affecting settings that apply to ``config`` (``only_for`` checked against its method)."""
    method = getattr(config, "method", None)
    return [f for f in fields(config) if f.metadata.get("result")
            and (f.metadata.get("only_for") is None or method in f.metadata["only_for"])]  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def canonical(text: str | None) -> str | None:
    """A setting's text in one spelling: numbers as floats ("1", "1.0" → "1.0"), everything else as is."""
    if text is None or text in ("True", "False"):
        return text
    try:
        return repr(float(text))
    except ValueError:
        return text


def identity(config) -> dict[str, str | None]:
    """The result-affecting settings of ``config`` as strings: what a resumed run must match. Input files and
    folders are left out: their content is checked per record (``prunelens.core.provenance``), not their path."""
    return {f.name: _text(getattr(config, f.name)) for f in result_fields(config) if not f.metadata.get("input")}


def identity_defaults(config_type) -> dict[str, str | None]:
    """Each result setting's default, as ``identity`` writes it: a run.json written before a setting
    existed is read as having used its default."""
    return {f.name: _text(default_of(f)) for f in fields(config_type)
            if f.metadata.get("result") and default_of(f) is not MISSING}  # fmt: skip


def differences(saved: dict, current: dict, config_type) -> list[tuple[str, str | None, str | None]]:
    """(setting, saved value, current value) for each setting of ``current`` whose value differs from
    ``saved``'s, a setting missing from ``saved`` counting as its default and numbers compared in one spelling."""
    previous = {**identity_defaults(config_type), **saved}
    return [(key, previous.get(key), value) for key, value in current.items()
            if canonical(previous.get(key)) != canonical(value)]  # fmt: skip


def folder_name(spec: str) -> str:
    """A model or tokenizer spec (alias, hub id, path) as a safe folder-name part: its last component."""
    return re.sub(r"[^\w.-]+", "_", Path(spec).name)


def name_parts(config) -> list[str]:
    """Output-name parts for the result settings that carry a ``name``: shown when ``always`` or when not
    at their default; other result settings away from their default add one short hash part."""
    parts, hidden = [], {}
    for f in result_fields(config):
        if f.metadata["prefix"]:
            continue
        value = getattr(config, f.name)
        if value == default_of(f) and not f.metadata["always"]:
            continue
        if f.metadata["name"] is None:
            hidden[f.name] = _text(value)
        elif isinstance(value, bool):
            parts.extend([f.metadata["name"]] if value else [])
        else:
            parts.append(f"{f.metadata['name']}{value:g}" if isinstance(value, float) else f"{f.metadata['name']}{value}")
    if hidden:
        parts.append(hashlib.sha1(json.dumps(hidden, sort_keys=True).encode()).hexdigest()[:6])
    return parts


def cli_command(config_type, run: Callable[..., Any], extra: dict[str, tuple[Any, Any]] | None = None,
                fail: Callable[[str], Any] | None = None) -> Callable:  # fmt: skip
    """A function whose keyword parameters are ``config_type``'s settings as typer options (help, bounds
    and flags from the field metadata), plus ``extra`` CLI-only options {name: (annotation, default)}.
    Calling it builds the config and calls ``run(config, **extra_values)``; a PrunelensError while
    converting the options goes to ``fail`` (the CLI's one-line error)."""
    import typer

    hints = get_type_hints(config_type)
    params, converters = [], {}
    for f in fields(config_type):
        if not f.metadata.get("cli", False):
            continue
        meta = f.metadata
        kind = meta["cli_type"] or hints[f.name]
        default = default_of(f)
        if default is MISSING:  # a required option
            default = inspect.Parameter.empty
        elif meta["cli_type"] is not None and default is not None:
            default = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        if meta["argument"]:
            option = typer.Argument(help=meta["help"], show_default=False)
        else:
            option = typer.Option(*([meta["flag"]] if meta["flag"] else []), help=meta["help"], min=meta["min"],
                                  max=meta["max"])  # fmt: skip
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[kind, option]))  # fmt: skip
        if meta["parse"] is not None:
            converters[f.name] = meta["parse"]
    for name, (annotation, default) in (extra or {}).items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))

    def command(**values):
        extras = {name: values.pop(name) for name in (extra or {})}
        try:
            for name, convert in converters.items():
                if values[name] is not None:
                    values[name] = convert(values[name])
            config = config_type(**values)
        except PrunelensError as error:
            if fail is None:
                raise
            return fail(str(error))
        return run(config, **extras)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
