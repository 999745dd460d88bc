"""deploy/compose/compose.yaml, checked by parsing (no Docker engine here): references resolve, files
exist, images are pinned, the Kafka cluster is consistent, and each service would start with the
environment compose gives it."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.local.platform import SERVICES as LOCAL_SERVICES
from tests.deploy.support import COMPOSE_DIR, REPO, SERVICES, fake_secret, load_service_settings, required_variables

COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
SECRETS_EXAMPLE = COMPOSE_DIR / "secrets.env.example"
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        value = env.get(name)
        if operator in (":-", "-") and not value:
            return argument or ""
        if operator in (":?", "?") and not value:
            raise KeyError(f"{name}: {argument}")
        return value or ""

    return _VARIABLE.sub(substitute, value)


def variables_in(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(variables_in(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(variables_in(v) for v in node)) if node else set()
    if isinstance(node, str):
        return {m.group(1) or m.group(4) for m in _VARIABLE.finditer(node) if m.group(0) != "$$"}
    return set()


def example_entries() -> dict[str, str]:
    entries = {}
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def filled_secrets() -> dict[str, str]:
    """secrets.env as an operator fills it: a fresh value of the right shape for every entry."""
    return {name: fake_secret(name) for name in example_entries()}


def environment(service: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so YAML merges and these tests can read it"
    return {key: interpolate(str(value), secrets) for key, value in env.items()}


# -- references, files, images -----------------------------------------------------------------


def test_depends_on_targets_exist_and_their_conditions_can_be_met(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            other = services[target]
            if condition["condition"] == "service_healthy":
                check = other.get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits for {target}'s health"
            elif condition["condition"] == "service_completed_successfully":
                assert other.get("restart", "no") == "no", f"{target} is a one-shot job for {name}"
            else:
                assert condition["condition"] == "service_started"


def test_every_image_is_pinned_or_built_here(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = COMPOSE_DIR / build["context"]
            assert (context / build["dockerfile"]).is_file(), name
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} should name a version"


def test_every_mounted_file_exists_in_the_repository(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).resolve().exists(), f"{name} mounts {source}, which does not exist"
                assert (COMPOSE_DIR / source).resolve().is_relative_to(REPO), source
        for env_file in service.get("env_file", []):
            assert (COMPOSE_DIR / env_file).is_file(), env_file


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source


# -- secrets -----------------------------------------------------------------------------------


def test_every_interpolated_variable_is_in_the_secrets_example(compose: dict[str, Any]) -> None:
    assert variables_in(compose) <= set(example_entries())


def test_the_secrets_example_holds_no_secret(compose: dict[str, Any]) -> None:
    assert example_entries(), "secrets.env.example lists the variables to fill"
    assert all(value == "" for value in example_entries().values())
    assert "copy to secrets.env" in SECRETS_EXAMPLE.read_text().lower()


def test_the_filled_secrets_file_and_the_tokens_are_not_committed() -> None:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("deploy/compose/secrets.env", "deploy/compose/tokens/tokens.json"):
        ignored = subprocess.run([git, "check-ignore", "-q", path], cwd=REPO, check=False).returncode == 0
        assert ignored, f"{path} would be committed"


def test_keys_reach_only_the_services_that_use_them(
    services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    owners = {
        "INTAKE_PSEUDONYM_KEY": {"intake"},
        "INTAKE_VAULT_KEY": {"intake"},
        "EXPORT_PSEUDONYM_KEY": {"export"},
        "EXPORT_SIGNING_KEY": {"export"},
    }
    for key, allowed in owners.items():
        holders = {name for name, service in services.items() if key in variables_in(service.get("environment"))}
        assert holders == allowed, f"{key} reaches {holders}"


# -- the services --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_sets_every_required_variable(
    name: str, services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    env = environment(services[name], filled_secrets)
    for choices in required_variables(name):
        assert any(env.get(choice) for choice in choices), f"{name} needs one of {choices}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_starts_with_its_compose_environment(
    name: str, services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    service = services[name]
    settings = load_service_settings(name, environment(service, filled_secrets))
    local_port = next(s.port for s in LOCAL_SERVICES if s.name == name)
    assert settings.http_host == "0.0.0.0"  # reachable from outside its container
    assert settings.http_port == local_port  # the same ports as `registry up`
    assert f"{local_port}:{local_port}" in service["ports"]
    assert settings.kafka.replication_factor == 3
    assert settings.kafka.min_insync_replicas == 2
    url = urlsplit(settings.database_url)
    assert url.scheme == "postgresql+asyncpg" and url.hostname == "postgres"
    assert url.username == name and url.path == f"/{name}"  # its own database and login
    assert service["command"] == [f"services.{name}"]
    assert (REPO / "services" / name / "__main__.py").is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_health_is_checked_on_the_service_port(
    name: str, services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    service = services[name]
    env = environment(service, filled_secrets)
    # The image's HEALTHCHECK finds the port from the one *_HTTP_PORT variable in the container.
    ports = [key for key in env if key.endswith("_HTTP_PORT")]
    assert ports == [f"{name.upper()}_HTTP_PORT"]
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], f"{name} healthcheck", "exec")
    assert f"http://127.0.0.1:{env[ports[0]]}/ready" in test[3]


def test_services_mount_the_tokens_file_they_are_told_to_read(
    services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    for name in SERVICES:
        env = environment(services[name], filled_secrets)
        tokens = env["REGISTRY_TOKENS_FILE"]
        mounts = [v.split(":") for v in services[name]["volumes"] if isinstance(v, str)]
        assert any(tokens.startswith(target.rstrip("/") + "/") and mode == "ro" for _, target, mode in mounts), name


def test_topics_are_created_by_the_registry_cli_before_the_services_start(
    services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    topics = services["topics"]
    assert topics["entrypoint"] == ["registry"] and topics["command"] == ["topics", "create"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "registry" in scripts
    env = environment(topics, filled_secrets)
    assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    for name in SERVICES:
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_registry_cli_has_the_topics_create_command() -> None:
    import typer.main

    from deploy.cli import app

    command = typer.main.get_command(app)
    groups = getattr(command, "commands", {})
    assert "create" in groups["topics"].commands


# -- Kafka -----------------------------------------------------------------------------------------


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    result = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def test_kafka_is_three_combined_kraft_nodes_of_the_official_image(services: dict[str, dict[str, Any]]) -> None:
    nodes = {name: s for name, s in services.items() if s.get("image", "").startswith("apache/kafka")}
    assert set(nodes) == set(KAFKA_NODES)
    for node in nodes.values():
        assert node["image"] == "apache/kafka:4.1.1"
        assert node["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_kafka_nodes_agree_on_the_cluster_and_the_controller_quorum(services: dict[str, dict[str, Any]]) -> None:
    envs = {name: services[name]["environment"] for name in KAFKA_NODES}
    cluster_ids = {env["CLUSTER_ID"] for env in envs.values()}
    assert len(cluster_ids) == 1
    assert len(base64.urlsafe_b64decode(cluster_ids.pop() + "==")) == 16  # a Kafka Uuid
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert len(voters) == 1
    declared = {}
    for voter in voters.pop().split(","):
        node_id, _, endpoint = voter.partition("@")
        host, _, port = endpoint.rpartition(":")
        declared[host] = (node_id, int(port))
    assert set(declared) == set(KAFKA_NODES)
    node_ids = [env["KAFKA_NODE_ID"] for env in envs.values()]
    assert len(set(node_ids)) == 3
    for name, env in envs.items():
        node_id, port = declared[name]
        assert env["KAFKA_NODE_ID"] == node_id and services[name]["hostname"] == name
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert _listeners(env["KAFKA_LISTENERS"])[controller][1] == port
        assert controller not in _listeners(env["KAFKA_ADVERTISED_LISTENERS"])


def test_kafka_durability_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in KAFKA_NODES:
        env = services[name]["environment"]
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"


def test_kafka_listeners_internal_for_containers_external_for_the_host(services: dict[str, dict[str, Any]]) -> None:
    for name in KAFKA_NODES:
        env = services[name]["environment"]
        protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        listeners = _listeners(env["KAFKA_LISTENERS"])
        advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        assert set(listeners) <= set(protocols) and set(advertised) <= set(listeners)
        internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
        assert advertised[internal] == (name, listeners[internal][1])
        external = [listener for listener in advertised if listener not in (internal,)]
        assert len(external) == 1
        host, port = advertised[external[0]]
        assert host == "localhost" and f"{port}:{port}" in services[name]["ports"]


def test_clients_bootstrap_from_every_broker(
    services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    internal = set()
    for name in KAFKA_NODES:
        env = services[name]["environment"]
        host, port = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        internal.add(f"{host}:{port}")
    for name in (*SERVICES, "topics"):
        env = environment(services[name], filled_secrets)
        assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal, name
    exporter = services["kafka-exporter"]["command"]
    assert {flag.split("=", 1)[1] for flag in exporter if flag.startswith("--kafka.server=")} == internal
    # Kafka 4 dropped the request versions older than 2.1 that the exporter uses by default.
    version = next(flag.split("=", 1)[1] for flag in exporter if flag.startswith("--kafka.version="))
    assert tuple(int(part) for part in version.split(".")[:2]) >= (2, 1)


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_init_creates_each_database_the_services_use(
    services: dict[str, dict[str, Any]], filled_secrets: dict[str, str]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    script_mount = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v)
    script = (COMPOSE_DIR / script_mount.split(":")[0]).read_text()
    created = set(re.search(r"for name in ([a-z ]+); do", script).group(1).split())  # type: ignore[union-attr]
    postgres_env = environment(postgres, filled_secrets)
    urls = [
        value
        for name in SERVICES
        for key, value in environment(services[name], filled_secrets).items()
        if key.endswith("DATABASE_URL")
    ]
    for url in map(urlsplit, urls):
        database = url.path.lstrip("/")
        assert database in created and url.username == database
        # The service logs in with the password the init script gave its role.
        assert url.password == postgres_env[f"{database.upper()}_DB_PASSWORD"]
