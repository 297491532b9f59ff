"""The container image and the compose file hold together with the code: the image installs
every package the wheel ships and serves on every interface, every ORDERDESK_* variable the
compose file sets is a setting the server reads, the servers start once PostgreSQL and Redis
are healthy, and only the proxy's X-Forwarded-For is believed.

The compose file is read by a small reader of the YAML it uses (mappings by indentation,
lists of scalars, anchors and `<<` merges); PyYAML is not a dependency of the project.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from orderdesk.cli import cli
from orderdesk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX = ROOT / "deploy" / "nginx.conf"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.<-]+):(?: +(?P<value>.*))?$")
_ITEM = re.compile(r"^(?P<indent> *)- +(?P<value>.*)$")


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def read_compose(text: str) -> dict[str, Any]:
    """The compose file as nested dicts, lists and strings, anchors merged."""
    root: dict[str, Any] = {}
    anchors: dict[str, dict[str, Any]] = {}
    # (the indentation of a container's entries, the container), innermost last
    stack: list[tuple[int, Any]] = [(0, root)]
    pending: tuple[int, dict[str, Any], str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if pending is not None:
            parent_indent, parent, key = pending
            pending = None
            assert indent > parent_indent, f"line {number}: an empty value for {key}"
            if raw.lstrip().startswith("- "):
                parent[key] = []
            stack.append((indent, parent[key]))
        while stack[-1][0] > indent:
            stack.pop()
        container_indent, container = stack[-1]
        assert container_indent == indent, f"line {number}: unexpected indentation"
        if item := _ITEM.match(raw):
            assert isinstance(container, list), f"line {number}: a list item in a mapping"
            container.append(_scalar(item["value"]))
            continue
        entry = _KEY.match(raw)
        assert entry is not None, f"line {number}: not a key: {raw!r}"
        assert isinstance(container, dict), f"line {number}: a key in a list"
        key, value = entry["key"], entry["value"]
        if key == "<<":
            assert value is not None, f"line {number}: a merge of nothing"
            assert value.startswith("*"), f"line {number}: a merge of {value!r}"
            container.update(anchors[value[1:]])
        elif value is None or value.startswith("&"):
            container[key] = {}
            if value is not None:
                anchors[value[1:]] = container[key]
            pending = (indent, container, key)
        else:
            container[key] = _scalar(value)
    return root


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_compose(COMPOSE.read_text())


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image."""
    services: dict[str, dict[str, Any]] = compose["services"]
    apps = {name: s for name, s in services.items() if s.get("build") == "."}
    assert len(apps) >= 2, "the scale-out setup runs two servers at least"
    return apps


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments), with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


# ------------------------------------------------------------------ the image


def test_the_image_serves_on_every_interface() -> None:
    commands = [json.loads(arguments) for name, arguments in final_stage() if name == "CMD"]
    assert len(commands) == 1
    command = commands[0]
    assert command[:2] == ["orderdesk", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_the_image_is_slim_python_311_and_runs_as_a_user() -> None:
    for name, arguments in dockerfile_instructions():
        if name == "FROM":
            assert arguments.split()[0] == "python:3.11-slim"
    users = [arguments for name, arguments in final_stage() if name == "USER"]
    assert users, "the server must not run as root"
    assert users[-1] not in {"root", "0"}


def test_the_image_checks_readiness_with_python() -> None:
    checks = [arguments for name, arguments in final_stage() if name == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    assert "/health/ready" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")  # the check itself is valid Python


def test_the_image_installs_every_package_the_wheel_ships_and_no_dev_extras() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        source
        for name, arguments in dockerfile_instructions()
        if name == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    # The build reads pyproject.toml and its readme.
    assert {*packages, "pyproject.toml", pyproject["project"]["readme"]} <= copied
    runs = " ".join(arguments for name, arguments in dockerfile_instructions() if name == "RUN")
    assert "pip install ." in runs
    assert "[dev]" not in runs


def test_dockerignore_keeps_what_the_image_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copied = {
        source.rstrip("/")
        for name, arguments in dockerfile_instructions()
        if name == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    assert not copied & ignored
    assert {".git", "tests", "**/__pycache__"} <= ignored


# ------------------------------------------------------------------ the compose file


def test_every_orderdesk_variable_compose_sets_is_a_setting(compose: dict[str, Any]) -> None:
    fields = {f"ORDERDESK_{name.upper()}" for name in Settings.model_fields}
    # And what `orderdesk serve` reads itself (its --host, --port and --workers).
    serve = typer.main.get_command(cli).commands["serve"]  # type: ignore[attr-defined]
    options = {param.envvar for param in serve.params if isinstance(param.envvar, str)}
    assert options == {"ORDERDESK_HOST", "ORDERDESK_PORT", "ORDERDESK_WORKERS"}
    set_anywhere = {
        name
        for service in compose["services"].values()
        for name in service.get("environment", {})
        if name.startswith("ORDERDESK_")
    }
    assert set_anywhere, "the servers are configured through ORDERDESK_* variables"
    assert set_anywhere <= fields | options, set_anywhere - fields - options


def test_the_servers_share_postgresql_redis_and_one_secret(compose: dict[str, Any]) -> None:
    for name, app in app_services(compose).items():
        env = app["environment"]
        assert env["ORDERDESK_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in env["ORDERDESK_DATABASE_URL"], name
        for redis_setting in ("BROKER_URL", "CACHE_URL", "RATE_LIMIT_URL", "APQ_URL"):
            assert env[f"ORDERDESK_{redis_setting}"].startswith("redis://redis:6379/"), name
        # From the operator's environment, refusing to start without it: never a default.
        assert re.fullmatch(r"\$\{ORDERDESK_JWT_SECRET:\?[^}]+\}", env["ORDERDESK_JWT_SECRET"])
        assert env["ORDERDESK_METRICS_TOKEN"].startswith("${ORDERDESK_METRICS_TOKEN")
        assert env["ORDERDESK_ENV"] == "production"
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"


def test_the_servers_start_once_postgresql_and_redis_are_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    for name, app in app_services(compose).items():
        assert app["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_only_the_proxy_is_believed_and_only_it_is_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy = services["proxy"]
    proxy_address = proxy["networks"]["orderdesk"]["ipv4_address"]
    for name, app in app_services(compose).items():
        assert app["environment"]["ORDERDESK_FORWARDED_ALLOW_IPS"] == proxy_address, name
        assert "ports" not in app, f"{name} is reached through the proxy only"
    assert [name for name, s in services.items() if "ports" in s] == ["proxy"]
    nginx = NGINX.read_text()
    for name, app in app_services(compose).items():
        assert re.search(rf"^\s*server {name}:8000\b", nginx, re.MULTILINE), name
        # Its address stays put, so the proxy's one look-up at start holds.
        assert app["networks"]["orderdesk"]["ipv4_address"] != proxy_address
    assert "/etc/nginx/conf.d/default.conf" in proxy["volumes"][0]


def test_the_proxy_passes_websockets_and_event_streams() -> None:
    nginx = NGINX.read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    stream = nginx[nginx.index("location /event-stream/") :]
    assert "proxy_buffering off;" in stream.split("}")[0]
    assert re.search(r'\$http_accept ~\* "text/event-stream"', nginx)


def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    """`nginx -t` on the site, with the apps' names pointed at the loopback address (the
    compose network's names do not resolve here)."""
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed")
    site = re.sub(r"server app\d+:", "server 127.0.0.1:", NGINX.read_text())
    (tmp_path / "site.conf").write_text(site.replace("listen 80;", "listen 127.0.0.1:18089;"))
    (tmp_path / "nginx.conf").write_text(
        f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {tmp_path}/site.conf;
}}
"""
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
