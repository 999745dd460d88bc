"""deploy/k8s: every kustomization renders (with our resolver, and with `kubectl kustomize` where it is
installed), and the rendered platform has the properties operating it relies on."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.topics import ALL_TOPICS
from tests.deploy import kustomize
from tests.deploy.support import K8S_DIR, REPO, SERVICES, fake_secret, load_service_settings, required_variables

Resource = dict[str, Any]
KUSTOMIZATIONS = sorted(path.parent for path in K8S_DIR.rglob("kustomization.yaml"))
TARGETS = {"base": K8S_DIR / "base", "dev": K8S_DIR / "overlays" / "dev", "prod": K8S_DIR / "overlays" / "prod"}
PARTITIONS = {spec.name: spec.partitions for spec in ALL_TOPICS}
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)", re.IGNORECASE)
_CACHE: dict[tuple[str, str], list[Resource]] = {}


def render(renderer: str, target: str) -> list[Resource]:
    if (renderer, target) not in _CACHE:
        if renderer == "python":
            _CACHE[renderer, target] = kustomize.build(TARGETS[target])
        else:
            built = kustomize.kubectl_build(TARGETS[target])
            if built is None:
                pytest.skip("kubectl is not installed")
            _CACHE[renderer, target] = built
    return _CACHE[renderer, target]


@pytest.fixture(params=[(r, t) for r in ("python", "kubectl") for t in TARGETS], ids=lambda p: f"{p[0]}-{p[1]}")
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    renderer, target = request.param
    return target, render(renderer, target)


def of_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def config_data(resources: list[Resource], name: str) -> dict[str, str]:
    return of_kind(resources, "ConfigMap")[name].get("data", {})


def quantity(value: str | int) -> float:
    """A Kubernetes quantity in base units (cores, bytes)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def container_env(resources: list[Resource], container: dict[str, Any], secret: Callable[[str], str]) -> dict[str, str]:
    """The environment the container gets: ConfigMaps from envFrom, then env (secretKeyRefs via `secret`)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets enter by secretKeyRef, one variable at a time"
        env |= config_data(resources, source["configMapRef"]["name"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret(ref["key"])
    return env


# -- kustomizations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_kustomization_resources_and_patches_exist(directory: Path) -> None:
    k = kustomize.load_kustomization(directory)
    for entry in k.get("resources", []):
        assert (directory / entry).exists(), f"{directory}: {entry}"
    for patch in k.get("patches", []):
        assert "patch" in patch or (directory / patch["path"]).is_file()


def test_every_manifest_file_is_used_by_a_kustomization() -> None:
    used = set()
    for directory in KUSTOMIZATIONS:
        k = kustomize.load_kustomization(directory)
        used |= {(directory / entry).resolve() for entry in k.get("resources", [])}
        used |= {(directory / p["path"]).resolve() for p in k.get("patches", []) if "path" in p}
    for path in K8S_DIR.rglob("*.yaml"):
        if path.name != "kustomization.yaml":
            assert path.resolve() in used, f"{path} is in no kustomization"


def test_renderers_agree(rendered: tuple[str, list[Resource]]) -> None:
    # Our resolver and kubectl produce the same objects (kubectl adds hash suffixes to generated names).
    target, resources = rendered
    ours = kustomize.build(TARGETS[target])

    def names(items: list[Resource]) -> set[tuple[str, str]]:
        return {(r["kind"], re.sub(r"-[a-z0-9]{10}$", "", r["metadata"]["name"])) for r in items}

    assert names(resources) == names(ours)
    for kind in ("Deployment", "Job"):
        for name, resource in of_kind(resources, kind).items():
            mine = of_kind(ours, kind)[name]
            assert resource["spec"].get("replicas") == mine["spec"].get("replicas")
            theirs_resources = kustomize.pod_spec(resource)["containers"][0]["resources"]
            assert theirs_resources == kustomize.pod_spec(mine)["containers"][0]["resources"]


def test_every_object_is_namespaced_in_the_platform_namespace(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    namespaces = of_kind(resources, "Namespace")
    assert list(namespaces) == ["childcancer-registry"]
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "childcancer-registry", resource["metadata"]["name"]


# -- Deployments -------------------------------------------------------------------------------------


def test_one_deployment_per_service(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    assert set(of_kind(resources, "Deployment")) == set(SERVICES)


def test_deployments_probe_health_and_readiness_on_their_port(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    for name, deployment in of_kind(resources, "Deployment").items():
        (container,) = kustomize.pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"), ("startupProbe", "/health")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert get["port"] in ports or get["port"] in ports.values(), f"{name} {probe} port"


def test_deployments_have_resources_sized_for_the_services(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    for name, deployment in of_kind(resources, "Deployment").items():
        (container,) = kustomize.pod_spec(deployment)["containers"]
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        for resource in ("cpu", "memory"):
            assert quantity(requests[resource]) <= quantity(limits[resource]), f"{name} {resource}"
        # A service works in about 200 MiB: its limit leaves room above that, its request is not tiny.
        assert quantity(limits["memory"]) >= 300 * 2**20, name
        assert quantity(requests["memory"]) >= 128 * 2**20, name
        assert quantity(limits["memory"]) <= 2 * 2**30, name


def test_pods_run_non_root_on_a_read_only_root(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    for resource in [*of_kind(resources, "Deployment").values(), *of_kind(resources, "Job").values()]:
        spec = kustomize.pod_spec(resource)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec.get("automountServiceAccountToken") is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            # Read-only root: /tmp is the one writable place, from an emptyDir.
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
            volume = next(v for v in spec["volumes"] if v["name"] == tmp["name"])
            assert "emptyDir" in volume


def test_images_are_pinned(rendered: tuple[str, list[Resource]]) -> None:
    _, resources = rendered
    for container in kustomize.containers_of_all(resources):
        _name, tag = kustomize.split_image(container["image"])
        assert tag and tag != "latest", container["image"]


def test_each_deployment_has_a_matching_service_and_disruption_budget(rendered: tuple[str, list[Resource]]) -> None:
    target, resources = rendered
    services = of_kind(resources, "Service")
    budgets = of_kind(resources, "PodDisruptionBudget")
    for name, deployment in of_kind(resources, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
        (container,) = kustomize.pod_spec(deployment)["containers"]
        port_names = {p["name"] for p in container["ports"]}
        port_numbers = {p["containerPort"] for p in container["ports"]}
        selecting = [s for s in services.values() if matches(s["spec"]["selector"], labels)]
        assert len(selecting) == 1, f"{name}: {len(selecting)} Services select its pods"
        for port in selecting[0]["spec"]["ports"]:
            assert port["targetPort"] in port_names | port_numbers
        guarding = [b for b in budgets.values() if matches(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(guarding) == 1, f"{name}: {len(guarding)} PodDisruptionBudgets"
        expected = 0 if target == "dev" else 1  # dev's single replicas must not block a node drain
        assert guarding[0]["spec"]["minAvailable"] == expected


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_starts_with_its_kubernetes_environment(rendered: tuple[str, list[Resource]], name: str) -> None:
    _, resources = rendered
    deployment = of_kind(resources, "Deployment")[name]
    (container,) = kustomize.pod_spec(deployment)["containers"]
    assert container["args"] == [f"services.{name}"]
    env = container_env(resources, container, fake_secret)
    for choices in required_variables(name):
        assert any(env.get(choice) for choice in choices), f"{name} needs one of {choices}"
    settings = load_service_settings(name, env)
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == container["ports"][0]["containerPort"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.http_port)
    # The tokens file the service reads is in the mounted Secret.
    tokens = env["REGISTRY_TOKENS_FILE"]
    mount = next(m for m in container["volumeMounts"] if tokens.startswith(m["mountPath"] + "/"))
    volume = next(v for v in kustomize.pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "registry-tokens" and mount["readOnly"] is True


def test_replication_settings_fit_the_environment(rendered: tuple[str, list[Resource]]) -> None:
    target, resources = rendered
    (config,) = [
        r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("registry-config")
    ]
    rf, min_isr = int(config["data"]["KAFKA_REPLICATION_FACTOR"]), int(config["data"]["KAFKA_MIN_INSYNC_REPLICAS"])
    assert (rf, min_isr) == ((1, 1) if target == "dev" else (3, 2))


# -- secrets -----------------------------------------------------------------------------------------


def test_no_secret_values_in_the_repository() -> None:
    for path in K8S_DIR.rglob("*.yaml"):
        for document in kustomize.load_documents(path):
            assert document.get("kind") != "Secret", f"{path}: Secrets are created outside the repository"
            assert "secretGenerator" not in document, path
    for target in TARGETS:
        for resource in render("python", target):
            spec = kustomize.pod_spec(resource) or {}
            for container in spec.get("containers", []):
                for item in container.get("env", []):
                    if _SECRET_NAME.search(item["name"]):
                        assert "value" not in item, f"{item['name']} has a literal value"
            for key, value in resource.get("data", {}).items():
                assert not _SECRET_NAME.search(key) or key == "REGISTRY_TOKENS_FILE", key
                assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"credentials in {key}"


def test_every_referenced_secret_is_documented() -> None:
    readme = (K8S_DIR / "README.md").read_text()
    for target in TARGETS:
        for resource in render("python", target):
            spec = kustomize.pod_spec(resource) or {}
            references = [
                (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
                for container in spec.get("containers", [])
                for item in container.get("env", [])
                if "valueFrom" in item
            ]
            references += [(v["secret"]["secretName"], None) for v in spec.get("volumes", []) if "secret" in v]
            for name, key in references:
                assert f"`{name}`" in readme, f"Secret {name} is not in deploy/k8s/README.md"
                if key is not None:
                    row = next(line for line in readme.splitlines() if f"`{key}`" in line)
                    assert row, f"{name}/{key} is not documented"


# -- autoscaling -------------------------------------------------------------------------------------


def test_keda_scales_the_consumers_on_their_lag_up_to_the_partition_count(
    rendered: tuple[str, list[Resource]],
) -> None:
    target, resources = rendered
    scaled = of_kind(resources, "ScaledObject")
    if target != "prod":
        assert not scaled
        return
    deployments = of_kind(resources, "Deployment")
    prefix = next(
        r["data"].get("KAFKA_TOPIC_PREFIX", "")
        for r in resources
        if r["metadata"]["name"].startswith("registry-config")
    )
    assert set(scaled) == {"validation", "stats", "export"}
    for name, scaled_object in scaled.items():
        spec = scaled_object["spec"]
        deployment = deployments[spec["scaleTargetRef"]["name"]]
        (container,) = kustomize.pod_spec(deployment)["containers"]
        env = container_env(resources, container, fake_secret)
        assert spec["minReplicaCount"] == 1
        assert spec["triggers"]
        for trigger in spec["triggers"]:
            metadata = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert metadata["consumerGroup"] == deployment["metadata"]["name"] == name
            assert env.get(metadata["bootstrapServersFromEnv"]), "KEDA reads the servers from the pod's env"
            topic = metadata["topic"]
            assert topic.startswith(prefix) and topic[len(prefix) :] in PARTITIONS, topic
            assert spec["maxReplicaCount"] <= PARTITIONS[topic[len(prefix) :]], f"{name}: more replicas than partitions"
            assert int(metadata["lagThreshold"]) > 0
            assert metadata["allowIdleConsumers"] == "false"


def test_keda_topics_are_the_inputs_of_the_group() -> None:
    from deploy.ops import groups

    for scaled_object in of_kind(render("python", "prod"), "ScaledObject").values():
        for trigger in scaled_object["spec"]["triggers"]:
            group = trigger["metadata"]["consumerGroup"]
            inputs = {spec.name for spec in groups.GROUP_INPUTS[group]}
            assert trigger["metadata"]["topic"] in inputs


def test_prod_autoscalers_own_the_replica_counts(rendered: tuple[str, list[Resource]]) -> None:
    target, resources = rendered
    if target != "prod":
        return
    deployments = of_kind(resources, "Deployment")
    hpas = of_kind(resources, "HorizontalPodAutoscaler")
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(resources, "ScaledObject").values()}
    by_hpa = {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
    assert by_hpa == {"intake"} and not by_hpa & scaled
    assert by_hpa | scaled == set(deployments)
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2  # with minAvailable 1, a drain never stops intake
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: applying would reset the autoscaler's count"


def test_dev_runs_one_replica_of_each(rendered: tuple[str, list[Resource]]) -> None:
    target, resources = rendered
    if target == "dev":
        assert {d["spec"]["replicas"] for d in of_kind(resources, "Deployment").values()} == {1}
        assert not of_kind(resources, "HorizontalPodAutoscaler")


# -- topics ------------------------------------------------------------------------------------------


def test_topics_are_created_by_a_job_running_the_registry_cli(rendered: tuple[str, list[Resource]]) -> None:
    import tomllib

    _, resources = rendered
    (job,) = of_kind(resources, "Job").values()
    (container,) = kustomize.pod_spec(job)["containers"]
    assert container["command"] == ["registry", "topics", "create"]
    assert "registry" in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    env = container_env(resources, container, fake_secret)
    assert {"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS"} <= set(env)
    assert kustomize.pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
