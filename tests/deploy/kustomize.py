"""A small Kustomize for the tests: resolves `deploy/k8s` kustomizations without the binary.

It implements what our kustomizations use — resources (files and directories), namespace, labels,
configMapGenerator (literals and env files, create and merge), patches (JSON 6902 lists and strategic
merge documents, with targets) and images — and refuses any other field, so a kustomization that grows
a feature this module does not understand fails the tests instead of being checked half-way.
Where `kubectl` is installed, the tests also render with `kubectl kustomize` and check that output too.
"""

from __future__ import annotations

import copy
import fnmatch
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "patches", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}


class KustomizeError(ValueError):
    pass


def load_kustomization(directory: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return yaml.safe_load((directory / name).read_text()) or {}
    raise KustomizeError(f"{directory}: no kustomization file")


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def build(directory: Path) -> list[Resource]:
    k = load_kustomization(directory)
    if unknown := set(k) - SUPPORTED:
        raise KustomizeError(f"{directory}: fields this resolver does not implement: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources += build(path)
        elif path.is_file():
            resources += load_documents(path)
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    for generator in k.get("configMapGenerator", []):
        _generate_config_map(directory, generator, resources)
    for patch in k.get("patches", []):
        _apply_patch(directory, patch, resources)
    if "namespace" in k:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = k["namespace"]
    for entry in k.get("labels", []):
        if entry.get("includeSelectors"):
            raise KustomizeError("labels with includeSelectors are not implemented")
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
            template = resource.get("spec", {}).get("template")
            if entry.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    for image in k.get("images", []):
        for container in containers_of_all(resources):
            name, tag = split_image(container["image"])
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return resources


def split_image(reference: str) -> tuple[str, str | None]:
    name, _, digest = reference.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
        return name, tag
    return name, digest or None


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return template.get("spec") if template else None


def containers_of_all(resources: list[Resource]) -> list[dict[str, Any]]:
    found = []
    for resource in resources:
        spec = pod_spec(resource)
        if spec:
            found += spec.get("containers", []) + spec.get("initContainers", [])
    return found


def _generate_config_map(directory: Path, generator: dict[str, Any], resources: list[Resource]) -> None:
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for env_file in generator.get("envs", []):
        for line in (directory / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    if generator.get("files"):
        raise KustomizeError("configMapGenerator files are not implemented")
    behavior = generator.get("behavior", "create")
    existing = [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"ConfigMap {generator['name']} generated twice")
        resources.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    elif behavior in ("merge", "replace"):
        if not existing:
            raise KustomizeError(f"ConfigMap {generator['name']} to {behavior} does not exist")
        target = existing[0].setdefault("data", {})
        if behavior == "replace":
            target.clear()
        target.update(data)
    else:
        raise KustomizeError(f"unknown generator behavior {behavior}")


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    if unknown := set(target) - {"kind", "name", "group", "version"}:
        raise KustomizeError(f"patch target fields not implemented: {sorted(unknown)}")
    group_version = resource.get("apiVersion", "")
    group, _, version = group_version.rpartition("/")
    return (
        ("kind" not in target or target["kind"] == resource["kind"])
        and ("name" not in target or fnmatch.fnmatchcase(resource["metadata"]["name"], target["name"]))
        and ("group" not in target or target["group"] == group)
        and ("version" not in target or target["version"] == version)
    )


def _apply_patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    body = yaml.safe_load(text)
    if "target" in patch:
        targets = [r for r in resources if _matches(r, patch["target"])]
    elif isinstance(body, dict):
        targets = [
            r for r in resources if r["kind"] == body["kind"] and r["metadata"]["name"] == body["metadata"]["name"]
        ]
    else:
        raise KustomizeError("a JSON 6902 patch needs a target")
    if not targets:
        raise KustomizeError(f"patch in {directory} matches no resource")
    for resource in targets:
        if isinstance(body, list):
            for operation in body:
                json6902(resource, operation)
        else:
            patched = strategic_merge(resource, {k: v for k, v in body.items() if k != "metadata"})
            resource.clear()
            resource.update(patched)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def json6902(document: Resource, operation: dict[str, Any]) -> None:
    *parents, last = _pointer(operation["path"])
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise KustomizeError(f"JSON 6902 op {op} is not implemented")
        return
    if op in ("replace", "remove") and last not in node:
        raise KustomizeError(f"{operation['path']} does not exist to {op}")
    if op in ("add", "replace"):
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise KustomizeError(f"JSON 6902 op {op} is not implemented")


def strategic_merge(base: Any, patch: Any) -> Any:
    """Maps merge key by key; lists of named maps (containers, env, volumes, ports) merge by name;
    `$patch: delete` removes a named item; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        merged_list = copy.deepcopy(base)
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old["name"] == item["name"]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del merged_list[index]
            elif index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = strategic_merge(merged_list[index], item)
        return merged_list
    return copy.deepcopy(patch)


def kubectl_build(directory: Path) -> list[Resource] | None:
    """`kubectl kustomize` of the directory, or None where kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise KustomizeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
