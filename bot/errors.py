"""Errors shared across the core's boundary (a leaf module: imports nothing)."""


class StartupError(Exception):
    """Something that stops the service from starting, phrased for the operator in one
    line: a bad configuration value, a platform refusing our token, a stale schema."""


NOT_STORED_NOTE = (
    "I couldn't take this message: my storage is unavailable right now. Please send it again in a few minutes."
)


class ServiceUnavailable(Exception):
    """The service cannot take a message right now (its database is unreachable): the
    platform is asked to deliver it again later (Slack: 503), and nothing is lost."""


class Overloaded(ServiceUnavailable):
    """Too much work is under way to take another message now; nothing was stored. Slack is
    asked to deliver it again (503); where a platform never delivers again (Discord), the
    person is shown `note`."""

    def __init__(self, note: str) -> None:
        super().__init__("too much work under way")
        self.note = note
