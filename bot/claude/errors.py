"""A failed Claude call as a `ClaudeError`: a stable `kind` for logs and metrics, and a
sentence fit to show in the thread (never a key, a trace or the API's own wording)."""

from __future__ import annotations

import re

import anthropic
import httpx2

_PROMPT_TOO_LONG = re.compile(r"prompt is too long", re.IGNORECASE)


class ClaudeError(Exception):
    """A failed call, with a short message fit to show in the thread.

    `kind` is stable for logs and metrics: auth, unknown_model, rate_limited,
    overloaded, server, connection, timeout, prompt_too_long, bad_request.
    """

    def __init__(
        self, kind: str, user_message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(f"{kind} (status={status}, request_id={request_id})")
        self.kind = kind
        self.user_message = user_message
        self.status = status
        self.request_id = request_id


def classify(exc: BaseException, model: str) -> ClaudeError:
    """A failed call as a ClaudeError with a sentence for the thread (never a key or a trace)."""
    if isinstance(exc, ClaudeError):
        return exc
    # The SDK's own timeout, or ours: no text for too long, or the whole answer over its time.
    if isinstance(exc, anthropic.APITimeoutError | TimeoutError):
        return ClaudeError("timeout", "Claude took too long to answer. Please try again.")
    # A connection dropped mid-stream surfaces as the HTTP library's own error.
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return ClaudeError("connection", "I couldn't reach Claude just now. Please try again in a moment.")
    if not isinstance(exc, anthropic.APIStatusError):
        return ClaudeError("server", "Something went wrong while asking Claude. Please try again.")
    status, request_id = exc.status_code, exc.request_id
    message = exc.api_message or ""
    kind, text = STATUS_SENTENCES.get(status, STATUS_SENTENCES[500])
    if status == 200:  # an error event in the middle of the stream
        kind, text = STREAM_ERROR_SENTENCES.get(exc.type or "", STATUS_SENTENCES[500])
    elif status == 400 and _PROMPT_TOO_LONG.search(message):
        kind, text = "prompt_too_long", "This conversation has grown too long for the model."
    elif status == 404 and "model" in message.lower():
        kind = "unknown_model"
        text = (
            f"The model `{model}` is not available. An admin can choose another with `/claude model`."
        )
    elif status >= 500 and status not in STATUS_SENTENCES:
        kind, text = STATUS_SENTENCES[500]
    return ClaudeError(kind, text, status=status, request_id=request_id)


STATUS_SENTENCES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Claude could not process this request."),
    401: ("auth", "I can't reach Claude: the service's API key was rejected. Please tell an admin."),
    403: ("auth", "I can't reach Claude: the service's API key is not allowed to do this. Please tell an admin."),
    404: ("bad_request", "Claude could not process this request."),
    413: ("bad_request", "This conversation is too large to send to Claude."),
    429: ("rate_limited", "Claude is getting too many requests right now. Please try again in a minute."),
    500: ("server", "Claude ran into an error. Please try again in a moment."),
    529: ("overloaded", "Claude is overloaded right now. Please try again in a few minutes."),
}
"""(kind, sentence) for an HTTP status the API answered with."""
for _status in (502, 503, 504):
    STATUS_SENTENCES[_status] = STATUS_SENTENCES[500]

STREAM_ERROR_SENTENCES: dict[str, tuple[str, str]] = {
    "overloaded_error": STATUS_SENTENCES[529],
    "rate_limit_error": STATUS_SENTENCES[429],
    "api_error": STATUS_SENTENCES[500],
}
"""(kind, sentence) for the type of an `error` event in the middle of a stream."""
