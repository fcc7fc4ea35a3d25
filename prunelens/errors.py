"""Error types whose message is the one line a user sees."""


class PrunelensError(Exception):
    """A user-facing error; its message is a complete one-line explanation."""


class BadRecordError(PrunelensError):
    """One input record cannot be processed; the message names the record and the problem."""

    def __init__(self, record_id: str, problem: str):
        self.record_id = record_id
        self.problem = problem
        super().__init__(f"record {record_id!r}: {problem}")
