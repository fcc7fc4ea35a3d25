"""Settings declared once: a dataclass field with metadata gives the CLI option, the resume check
and the default output-folder name.

``setting(default, help, result=True, name=...)``: ``result`` marks a setting that changes results (a
resumed run must use the same value; ``identity`` collects them); ``name`` is how a non-default value
appears in the default output-folder name (``"k"`` → ``k0.5``; ``""`` → the bare value), and ``always``
shows it even at its default; ``prefix`` marks settings the folder name spells out already (model, data);
``variant_of=(selector, registry)`` marks the field that holds the options of the variant the ``selector``
field picks (e.g. a ranker's own options, ``registry.options_type(method)``): their settings count as the
config's own (folder names, resume checks, inputs) and appear as CLI options, refused for other variants.
``cli_type`` / ``parse`` convert a CLI string (e.g. ids);
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
from typing import Annotated, Any, Optional, get_type_hints

from prunelens.core.errors import PrunelensError, SettingsError

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
    variant_of: tuple[str, Any] | None = None,
    cli_type: type | None = None,
    parse: Callable[[Any], Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    default_factory: Callable[[], Any] | None = None,
    input: bool | str = False,
) -> Any:
    """A dataclass field carrying its help, whether it affects results, and how it shows in names."""
    metadata = {"help": help, "result": result, "name": name, "always": always, "flag": flag, "cli": cli,
                "argument": argument, "prefix": prefix, "variant_of": variant_of, "cli_type": cli_type, "parse": parse,
                "min": minimum, "max": maximum, "input": input}  # fmt: skip
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


class Variants:
    """The options dataclass of each value of a selector setting (None where a value has none): what
    ``variant_of`` takes when the choices are not a registry (whose entries carry their options too)."""

    def __init__(self, kind: str, types: dict[Any, type | None]):
        self.kind, self.types = kind, types

    def names(self) -> list[Any]:
        return list(self.types)

    def options_type(self, name: Any) -> type | None:
        if name not in self.types:
            raise PrunelensError(f"unknown {self.kind} {name!r} (known: {', '.join(map(str, self.types))})")
        return self.types[name]


def setting_pairs(config) -> list[tuple[Any, Field]]:
    """Every setting of ``config`` with the object holding it: its own fields, and in place of a variant-options
    field the fields of the options it holds (none where the chosen variant has no options)."""
    pairs = []
    for f in fields(config):
        if f.metadata.get("variant_of") is None:
            pairs.append((config, f))
        elif getattr(config, f.name) is not None:
            pairs.extend((getattr(config, f.name), g) for g in fields(getattr(config, f.name)))
    return pairs


def result_fields(config) -> list[tuple[Any, Field]]:
    """The result-affecting settings of ``config`` (its variant's options included), each with its holder."""
    return [(holder, f) for holder, f in setting_pairs(config) if f.metadata.get("result")]


def _selector(config_type, holder: str) -> Field:
    """The setting whose value picks the options that the variant-options field ``holder`` holds."""
    fields_by_name = {f.name: f for f in fields(config_type)}
    return fields_by_name[fields_by_name[holder].metadata["variant_of"][0]]


def variant_types(config_type) -> dict[str, dict[str, type | None]]:
    """{variant-options field: {choice: its options class, or None}} for each such field of ``config_type``."""
    found = {}
    for f in fields(config_type):
        if f.metadata.get("variant_of") is not None:
            _selector, registry = f.metadata["variant_of"]
            found[f.name] = {choice: registry.options_type(choice) for choice in registry.names()}
    return found


def settle_variant(config) -> None:
    """Give each variant-options field of ``config`` the chosen variant's options (its defaults when unset); a
    one-line PrunelensError for an unknown choice, a SettingsError for options of another variant."""
    for f in fields(config):
        if f.metadata.get("variant_of") is None:
            continue
        selector, registry = f.metadata["variant_of"]
        choice, given = getattr(config, selector), getattr(config, f.name)
        expected = registry.options_type(choice)  # an unknown choice is one line here
        if given is None and expected is not None:
            setattr(config, f.name, expected())
        elif given is not None and not isinstance(given, expected or ()):
            raise SettingsError("{%s} {chosen!r} takes {wanted}, not {given}" % selector, chosen=choice,
                                wanted=expected.__name__ if expected else "no options", given=type(given).__name__)


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
    return {f.name: _text(getattr(holder, f.name)) for holder, f in result_fields(config) if not f.metadata.get("input")}


def identity_defaults(config_type) -> dict[str, str | None]:
    """Each result setting's default (those of every variant's options included), as ``identity`` writes it: a
    run.json written before a setting existed is read as having used its default."""
    declared = list(fields(config_type))
    for choices in variant_types(config_type).values():
        declared += [f for options in choices.values() if options is not None for f in fields(options)]
    return {f.name: _text(default_of(f)) for f in declared if f.metadata.get("result") and default_of(f) is not MISSING}


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
    for holder, f in result_fields(config):
        if f.metadata["prefix"]:
            continue
        value = getattr(holder, f.name)
        if value == default_of(f) and not f.metadata["always"]:
            continue
        if f.metadata["name"] is None:  # an input counts by its resolved path: any spelling names one folder
            hidden[f.name] = _text(Path(value).resolve() if f.metadata.get("input") and value is not None else value)
        elif isinstance(value, bool):
            parts.extend([f.metadata["name"]] if value else [])
        else:
            parts.append(f"{f.metadata['name']}{value:g}" if isinstance(value, float) else f"{f.metadata['name']}{value}")
    if hidden:
        parts.append(hashlib.sha1(json.dumps(hidden, sort_keys=True).encode()).hexdigest()[:6])
    return parts


def flag_of(f: Field) -> str:
    """The CLI flag of a setting: its ``flag``, else --name-with-dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _parameter(f: Field, kind, default, help: str | None = None) -> inspect.Parameter:
    """One typer option (or argument) from a setting's metadata (``help`` in place of its own)."""
    import typer

    meta = f.metadata
    if meta["argument"]:
        option = typer.Argument(help=help or meta["help"], show_default=False)
    else:
        option = typer.Option(*([meta["flag"]] if meta["flag"] else []), help=help or meta["help"], min=meta["min"],
                              max=meta["max"])  # fmt: skip
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option])


def _variant_options(config_type) -> dict[str, tuple[str, str, list[str], Field, Any]]:
    """{option name: (variant field, selector, the choices that have it, its field, its type)} over every variant's
    options of ``config_type``: each becomes one CLI option, whatever the number of variants sharing it."""
    found: dict[str, tuple[str, str, list[str], Field, Any]] = {}
    for holder_field, choices in variant_types(config_type).items():
        selector = _selector(config_type, holder_field).name
        for choice, options in choices.items():
            if options is None:
                continue
            hints = get_type_hints(options)
            for f in fields(options):
                if f.metadata.get("cli", False):
                    owners = found.setdefault(f.name, (holder_field, selector, [], f, hints[f.name]))[2]
                    owners.append(choice)
    return found


def setting_names(config_type) -> set[str]:
    """Every setting a flat table for ``config_type`` may hold: its own and those of each variant's options."""
    return {f.name for f in fields(config_type)} | set(_variant_options(config_type))


def _as_declared(hint, value):
    """A table's string as a Path where the setting is declared a Path; anything else unchanged."""
    return Path(value) if isinstance(value, str) and Path in getattr(hint, "__args__", (hint,)) else value


def build_config(config_type, values: dict[str, Any]):
    """A config from flat {setting: value} (CLI options, a TOML table, a preset): each variant setting goes into
    the chosen variant's options (refused for another variant), strings become paths where a setting is declared
    a Path, and an unknown setting is one line."""
    hints, variant_options = get_type_hints(config_type), _variant_options(config_type)
    unknown = sorted(set(values) - hints.keys() - variant_options.keys())
    if unknown:
        raise PrunelensError(f"unknown setting(s) for {config_type.__name__}: {', '.join(unknown)}")
    own = {k: _as_declared(hints[k], v) for k, v in values.items() if k not in variant_options}
    for holder, choices in variant_types(config_type).items():
        choice, mine = _variant_settings(config_type, holder, choices, own, values, variant_options)
        options = choices.get(choice)
        if options is not None:
            option_hints = get_type_hints(options)
            own[holder] = options(**{k: _as_declared(option_hints[k], v) for k, v in mine.items()})
    return config_type(**own)


def _variant_settings(config_type, holder: str, choices: dict, own: dict, values: dict,
                      variant_options) -> tuple[Any, dict]:  # fmt: skip
    """The choice of one variant field's selector (``choices``: its options class per choice) and the given
    settings of its options; a SettingsError for a setting of another choice."""
    selector = _selector(config_type, holder)
    choice = own.get(selector.name, default_of(selector))
    mine = {k: v for k, v in values.items() if k in variant_options and variant_options[k][0] == holder}
    for name in mine:
        owners = variant_options[name][2]
        if choice in choices and choice not in owners:
            if isinstance(choice, bool):
                raise SettingsError("{%s} needs {%s}" % (name, selector.name))
            raise SettingsError("{%s} is a setting of {%s} {owners}, not {chosen}" % (name, selector.name),
                                owners=" | ".join(map(str, owners)), chosen=choice)  # fmt: skip
    return choice, mine


def check_variant_settings(config_type, values: dict[str, Any]) -> None:
    """Refuse, in one line, a flat table that gives a setting of a variant its selector does not choose (before
    anything runs: ``build_config`` would refuse it only when the config is built)."""
    variant_options = _variant_options(config_type)
    for holder, choices in variant_types(config_type).items():
        _variant_settings(config_type, holder, choices, values, values, variant_options)


def settings_for(config_type, values: dict[str, Any], choice: Any) -> dict[str, Any]:
    """``values`` without the variant settings that ``choice`` does not have: one table (e.g. a pipeline's
    ``[rank]``) serving several variants, each taking its own."""
    variant_options = _variant_options(config_type)
    return {k: v for k, v in values.items() if k not in variant_options or choice in variant_options[k][2]}


def cli_command(config_type, run: Callable[..., Any], extra: dict[str, tuple[Any, Any]] | None = None,
                fail: Callable[[str], Any] | None = None) -> Callable:  # fmt: skip
    """A function whose keyword parameters are ``config_type``'s settings as typer options (help, bounds
    and flags from the field metadata), the settings of each variant's options too (given only with their
    variant), plus ``extra`` CLI-only options {name: (annotation, default)}. Calling it builds the config and
    calls ``run(config, **extra_values)``; a PrunelensError while converting the options goes to ``fail`` (the
    CLI's one-line error)."""
    hints = get_type_hints(config_type)
    params, converters = [], {}
    for f in fields(config_type):
        if not f.metadata.get("cli", False):
            continue
        meta = f.metadata
        default = default_of(f)
        if default is MISSING:  # a required option
            default = inspect.Parameter.empty
        elif meta["cli_type"] is not None and default is not None:
            default = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        params.append(_parameter(f, meta["cli_type"] or hints[f.name], default))
        if meta["parse"] is not None:
            converters[f.name] = meta["parse"]
    variant_options = _variant_options(config_type)
    declared = {f.name: f for f in fields(config_type)} | {name: entry[3] for name, entry in variant_options.items()}

    def flags(name: str) -> str:
        return flag_of(declared[name]) if name in declared else "--" + name.replace("_", "-")

    for _holder, selector, owners, f, kind in variant_options.values():  # None: not given, the variant's default
        owner = f"with --{selector.replace('_', '-')}" if owners == [True] else ", ".join(map(str, owners))
        text = f.metadata["help"]
        if not text.lower().startswith(f"{owner.lower()}:"):  # e.g. LLMSettings' "LLM: …" under the llm annotator
            text = f"{owner}: {text}"
        params.append(_parameter(f, Optional[kind], None, help=text))
    for name, (annotation, default) in (extra or {}).items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))

    def command(**values):
        extras = {name: values.pop(name) for name in (extra or {})}
        values = {k: v for k, v in values.items() if not (k in variant_options and v is None)}
        try:
            for name, convert in converters.items():
                if values[name] is not None:
                    values[name] = convert(values[name])
            config = build_config(config_type, values)
        except PrunelensError as error:
            if fail is None:
                raise
            return fail(error.render(flags) if isinstance(error, SettingsError) else str(error))
        return run(config, **extras)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
