"""The Docker image and compose file run what the Procfile runs, with the environment the
service reads. Docker itself may be unavailable where tests run, so the files are read as
text: the Dockerfile's final stage, and compose.yaml (block-style YAML, read by the Slack
manifests' reader)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, load_config
from tests.processes import BOT, ROOT
from tests.test_slack_manifests import load_manifest

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip():
            name, _, command = line.partition(":")
            entries[name.strip()] = shlex.split(command)
    return entries


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments), line continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in stage:
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def only(stage: list[tuple[str, str]], instruction: str) -> str:
    [value] = [arguments for name, arguments in stage if name == instruction]
    return value


def compose() -> dict[str, Any]:
    return load_manifest((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def service_settings(env: dict[str, str]) -> dict[str, str]:
    """The variables among `env` that the service reads (Config fields), lower-cased."""
    return {name.lower(): value for name, value in env.items() if name.lower() in Config.model_fields}


def test_the_image_is_multi_stage_on_slim_python_311_and_runs_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(only(stage, "FROM").split()[0] == "python:3.11-slim" for stage in stages)
    final = stages[-1]
    assert only(final, "USER") not in ("root", "0")
    assert "useradd" in only(final, "RUN")
    assert "COPY --from=build /opt/venv /opt/venv" in [f"COPY {args}" for name, args in final if name == "COPY"]


def test_the_images_command_and_the_compose_commands_are_the_procfiles() -> None:
    entries = procfile()
    final = dockerfile_stages()[-1]
    assert json.loads(only(final, "CMD")) == entries["web"]
    services = compose()["services"]
    assert services["bot"]["command"] == entries["web"]
    assert services["migrate"]["command"] == entries["release"], "`bot migrate` runs as a one-off before serving"
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_images_environment_is_what_the_service_reads_and_holds_no_secret() -> None:
    final = dockerfile_stages()[-1]
    env = image_env(final)
    assert not [name for name in env if any(word in name for word in SECRET_WORDS)]
    config = load_config(**service_settings(env))  # every value is valid as the service reads it
    assert (config.host, str(config.port), only(final, "EXPOSE")) == ("0.0.0.0", env["PORT"], env["PORT"])
    assert config.database_url == "sqlite+aiosqlite:////data/bot.db"
    assert "mkdir /data && chown bot:bot /data" in only(final, "RUN"), "the SQLite directory is the user's"


def test_compose_runs_the_service_with_postgresql_on_port_and_replicas() -> None:
    services = compose()["services"]
    assert services["db"]["image"].startswith("postgres:")
    for name in ("bot", "migrate"):
        env = services[name]["environment"]
        config = load_config(**service_settings(env))
        assert config.database_url.startswith("postgresql+asyncpg://bot:bot@db:5432/bot"), name
        assert set(env) <= {name.upper() for name in Config.model_fields}, "only variables the service reads"
    bot = services["bot"]
    assert bot["ports"] == [f"8000-8001:{bot['environment']['PORT']}"]
    assert bot["deploy"]["replicas"] == "${BOT_REPLICAS:-1}"


def test_the_images_one_off_migrate_works_with_the_images_environment(tmp_path: Path) -> None:
    env = {**image_env(dockerfile_stages()[-1]), "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "HOME": str(tmp_path)}
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(Path(BOT[0]).parent))
    result = subprocess.run([*BOT, *procfile()["release"][1:]], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bot.db").exists()


@pytest.mark.parametrize("ignored", [".env", ".git", ".venv", "data"])
def test_the_build_context_leaves_out_secrets_and_local_state(ignored: str) -> None:
    assert ignored in (ROOT / ".dockerignore").read_text().split()
