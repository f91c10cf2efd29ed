"""Slack, by concern: `adapter` (lifecycle and listeners), `ingress` (HTTP requests in),
`translate` (events to the core's values), `users` (names and admins), `files` (files on
messages), `surface` (the core's handle on one event), `progress` and `assistant` (what a person sees meanwhile),
and the streamed reply itself."""

from adapters.slack.adapter import SlackAdapter, SlackConfig
from adapters.slack.assistant import DEFAULT_PROMPTS
from adapters.slack.files import SLACK_FILE_HOSTS
from adapters.slack.oauth import SlackOAuthConfig, check_encryption_key

__all__ = [
    "DEFAULT_PROMPTS",
    "SLACK_FILE_HOSTS",
    "SlackAdapter",
    "SlackConfig",
    "SlackOAuthConfig",
    "check_encryption_key",
]
