"""Error types whose message is the one line a user sees."""

from __future__ import annotations


class PrunelensError(Exception):
    """A user-facing error; its message is a complete one-line explanation."""


class BadRecordError(PrunelensError):
    """One input record cannot be processed; the message names the record and the problem."""

    def __init__(self, record_id: str, problem: str):
        self.record_id = record_id
        self.problem = problem
        super().__init__(f"record {record_id!r}: {problem}")


class SettingsError(PrunelensError):
    """Settings refused in field terms: each ``{name}`` in ``template`` not given in ``values`` is a setting, spelt
    ``name`` for Python callers and as its flag on the command line (``render``, which the CLI calls)."""

    def __init__(self, template: str, **values):
        self.template, self.values = template, values
        super().__init__(self.render(lambda name: name))

    def render(self, spell) -> str:
        """The message with each setting spelt by ``spell(name)``."""
        return self.template.format_map(_Spelled(spell, self.values))

    def renamed(self, names: dict[str, str]) -> SettingsError:
        """The same refusal with settings renamed (another config's field names for the same things)."""
        template = self.template
        for old, new in names.items():
            template = template.replace("{" + old + "}", "{" + new + "}")
        return SettingsError(template, **self.values)


class _Spelled(dict):
    def __init__(self, spell, values):
        super().__init__(values)
        self.spell = spell

    def __missing__(self, name: str) -> str:
        return self.spell(name)


def reason(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if it has none): the part of a
    library's error that fits in a one-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
