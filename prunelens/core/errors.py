"""Error types whose message is the one line a user sees."""


class PrunelensError(Exception):
    """A user-facing error; its message is a complete one-line explanation."""


class BadRecordError(PrunelensError):
    """One input record cannot be processed; the message names the record and the problem."""

    def __init__(self, record_id: str, problem: str):
        self.record_id = record_id
        self.problem = problem
        super().__init__(f"record {record_id!r}: {problem}")


def reason(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if it has none): the part of a
    library's error that fits in a one-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
