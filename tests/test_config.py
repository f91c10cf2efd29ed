"""`bot.config`: what an operator's environment and `.env` turn into, and the
one-line errors a bad value gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import DEFAULT_MODEL, Config, StartupError, load_config

SECRET_FIELDS = ("anthropic_api_key", "slack_bot_token", "slack_signing_secret", "slack_app_token", "discord_token")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting leaks in from the developer's shell or a `.env` in the checkout:
    every variable Config reads is removed (in any case) and the working
    directory is an empty temp dir."""
    fields = {name.upper() for name in Config.model_fields}
    for key in list(os.environ):
        if key.upper() in fields:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(**overrides: object) -> str:
    with pytest.raises(StartupError) as caught:
        load_config(**overrides)
    message = str(caught.value)
    assert "\n" not in message, f"the error must be one line, got {message!r}"
    assert "Traceback" not in message
    return message


# --------------------------------------------------------------------------- sources


def test_defaults_apply_when_nothing_is_set() -> None:
    config = load_config()
    assert config.anthropic_api_key is None
    assert config.anthropic_base_url is None
    assert config.default_model == DEFAULT_MODEL == "claude-sonnet-5-5"
    assert config.max_tokens == 4096
    assert config.max_retry_wait_seconds == 20
    assert config.database_url == "sqlite+aiosqlite:///./data/bot.db"
    assert config.thread_ttl_days == 30
    assert config.prune_interval_minutes == 60
    assert config.max_concurrent_claude_calls == 256
    assert config.admin_user_ids == frozenset()
    assert (config.host, config.port) == ("0.0.0.0", 8000)
    assert config.log_level == "INFO"
    assert config.slack_api_url == "https://slack.com/api/"
    assert all(getattr(config, name) is None for name in SECRET_FIELDS)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-000000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("DEFAULT_MODEL", "claude-haiku-5-5")
    monkeypatch.setenv("MAX_TOKENS", "1024")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("THREAD_TTL_DAYS", "7")
    config = load_config()
    assert config.require_anthropic_key().get_secret_value() == "sk-ant-from-env-000000"
    assert config.anthropic_base_url == "http://127.0.0.1:9999"
    assert config.default_model == "claude-haiku-5-5"
    assert config.max_tokens == 1024
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert config.thread_ttl_days == 7


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("max_tokens", "77")
    assert load_config().max_tokens == 77


def test_keyword_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TOKENS", "1000")
    monkeypatch.setenv("DEFAULT_MODEL", "claude-haiku-5-5")
    config = load_config(max_tokens=2000)
    assert config.max_tokens == 2000
    assert config.default_model == "claude-haiku-5-5"


def test_dotenv_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "ANTHROPIC_API_KEY=sk-ant-from-dotenv-1111\n"
        "MAX_TOKENS=321\n"
        "DATABASE_URL=postgres://app@db.internal:5432/chat\n"
        "ADMIN_USER_IDS=slack:U9,discord:42\n"
    )
    config = load_config()
    assert config.require_anthropic_key().get_secret_value() == "sk-ant-from-dotenv-1111"
    assert config.max_tokens == 321
    assert config.database_url == "postgresql+asyncpg://app@db.internal:5432/chat"
    assert config.admin_user_ids == frozenset({"slack:U9", "discord:42"})


def test_environment_wins_over_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("MAX_TOKENS=100\nDEFAULT_MODEL=claude-opus-5-5\n")
    monkeypatch.setenv("MAX_TOKENS", "200")
    config = load_config()
    assert config.max_tokens == 200
    assert config.default_model == "claude-opus-5-5"


def test_a_bad_value_in_dotenv_is_reported_like_one_in_the_environment(clean_env: Path) -> None:
    (clean_env / ".env").write_text("MAX_TOKENS=lots\n")
    assert one_line_error().startswith("MAX_TOKENS:")


# --------------------------------------------------------------------------- DATABASE_URL


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://user:pw@db.example.com:5432/chat", "postgresql+asyncpg://user:pw@db.example.com:5432/chat"),
        ("postgresql://user:pw@db.example.com:5432/chat", "postgresql+asyncpg://user:pw@db.example.com:5432/chat"),
        ("postgresql+asyncpg://user@db/chat", "postgresql+asyncpg://user@db/chat"),
        ("sqlite:///x", "sqlite+aiosqlite:///x"),
        ("sqlite:////var/lib/bot/bot.db", "sqlite+aiosqlite:////var/lib/bot/bot.db"),
        ("sqlite+aiosqlite:///./data/bot.db", "sqlite+aiosqlite:///./data/bot.db"),
        ("  postgres://user@db/chat  ", "postgresql+asyncpg://user@db/chat"),
    ],
)
def test_database_urls_are_normalized_to_the_async_driver(given: str, expected: str) -> None:
    assert load_config(database_url=given).database_url == expected


def test_database_url_from_the_environment_is_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db:5432/chat")
    assert load_config().database_url == "postgresql+asyncpg://app@db:5432/chat"


@pytest.mark.parametrize("url", ["mysql://user@db/chat", "not a url", "", "http://db.example.com/chat"])
def test_an_unsupported_database_url_is_one_line_naming_database_url(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    message = one_line_error()
    assert message.startswith("DATABASE_URL:")
    assert "PostgreSQL" in message and "SQLite" in message


# --------------------------------------------------------------------------- numbers and levels


@pytest.mark.parametrize("value", ["lots", "4.5", "12k"])
def test_a_non_integer_max_tokens_is_one_line_naming_max_tokens(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TOKENS", value)
    message = one_line_error()
    assert message.startswith("MAX_TOKENS:")
    assert "integer" in message


def test_an_out_of_range_max_tokens_is_refused() -> None:
    assert one_line_error(max_tokens=0).startswith("MAX_TOKENS:")


def test_several_bad_variables_are_all_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TOKENS", "lots")
    monkeypatch.setenv("DATABASE_URL", "mysql://db/chat")
    message = one_line_error()
    assert "MAX_TOKENS:" in message and "DATABASE_URL:" in message


def test_log_level_is_case_insensitive_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_config().log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    assert one_line_error().startswith("LOG_LEVEL:")


# --------------------------------------------------------------------------- ADMIN_USER_IDS


def test_admin_user_ids_parse_into_a_frozenset_of_qualified_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", "slack:U1, discord:2")
    admins = load_config().admin_user_ids
    assert isinstance(admins, frozenset)
    assert admins == frozenset({"slack:U1", "discord:2"})


def test_admin_user_ids_ignore_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", " slack:U1,, ,slack:U1,")
    assert load_config().admin_user_ids == frozenset({"slack:U1"})


def test_admin_user_ids_as_a_keyword_override_are_parsed_too() -> None:
    assert load_config(admin_user_ids="discord:456").admin_user_ids == frozenset({"discord:456"})


@pytest.mark.parametrize("bad", ["U1", ":U1", "slack:"])
def test_an_unqualified_admin_id_is_refused_with_a_clear_message(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", f"slack:U0,{bad}")
    message = one_line_error()
    assert message.startswith("ADMIN_USER_IDS:")
    assert repr(bad) in message
    assert "platform-qualified" in message
    assert "slack:U123" in message  # shows what a good one looks like


# --------------------------------------------------------------------------- secrets


def test_secrets_are_secretstr_and_never_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "ANTHROPIC_API_KEY": "sk-ant-canary-api-key-9876",
        "SLACK_BOT_TOKEN": "xoxb-canary-bot-token-9876",
        "SLACK_SIGNING_SECRET": "canary-signing-secret-9876",
        "SLACK_APP_TOKEN": "xapp-canary-app-token-9876",
        "DISCORD_TOKEN": "canary-discord-token-9876",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    for field in SECRET_FIELDS:
        secret = getattr(config, field)
        assert isinstance(secret, SecretStr), field
        assert secret.get_secret_value() == values[field.upper()]
    for rendering in (repr(config), str(config), f"{config}", repr(config.model_dump())):
        for value in values.values():
            assert value not in rendering


def test_secrets_given_as_keywords_are_wrapped_too() -> None:
    config = load_config(anthropic_api_key="sk-ant-keyword-canary-5555")
    assert isinstance(config.anthropic_api_key, SecretStr)
    assert "sk-ant-keyword-canary-5555" not in repr(config)


def test_require_anthropic_key_names_the_variable_when_unset() -> None:
    config = load_config()
    with pytest.raises(StartupError) as caught:
        config.require_anthropic_key()
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_anthropic_key_counts_as_unset(clean_env: Path) -> None:
    # `.env.example` ships with `ANTHROPIC_API_KEY=`; copying it unchanged must not pass.
    (clean_env / ".env").write_text("ANTHROPIC_API_KEY=\n")
    with pytest.raises(StartupError, match="ANTHROPIC_API_KEY"):
        load_config().require_anthropic_key()


def test_require_anthropic_key_returns_the_secret_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-present-4242")
    key = load_config().require_anthropic_key()
    assert isinstance(key, SecretStr)
    assert key.get_secret_value() == "sk-ant-present-4242"


def test_a_database_password_is_not_in_repr() -> None:
    config = load_config(database_url="postgres://app:db-canary-password-77@db.internal:5432/chat")
    assert "db-canary-password-77" not in repr(config)


def test_discord_shard_ids_need_a_count_and_must_fit_it() -> None:
    assert load_config(discord_shard_count=4, discord_shard_ids="2,3").discord_shard_ids == (2, 3)
    with pytest.raises(StartupError, match="DISCORD_SHARD_COUNT"):
        load_config(discord_shard_ids="1")
    with pytest.raises(StartupError, match="between 0 and"):
        load_config(discord_shard_count=2, discord_shard_ids="5")


@pytest.mark.parametrize(
    ("given", "expected"), [("off", None), ("OFF", None), ("", None), ("9464", 9464), ("0", 0)]
)
def test_metrics_port_is_a_port_or_off(given: str, expected: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", given)
    assert load_config().metrics_port == expected


@pytest.mark.parametrize("given", ["metrics", "70000", "-1"])
def test_a_bad_metrics_port_is_one_line_naming_it(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", given)
    assert "METRICS_PORT" in one_line_error()
