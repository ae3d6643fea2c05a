"""Render a Kubernetes Pulumi program to manifests and validate them, with no cluster.

:func:`render` runs the program (``infra/k8s`` by default) on the Pulumi SDK's mock runtime
(:func:`branchenv.mockruntime.run_program`) with the config branchenv would give
the branch's stack, turns each ``kubernetes:<group>/<version>:<Kind>`` registration into a
manifest (apiVersion and kind from the type token, the rest from the camelCase inputs) and writes
one YAML file per object, numbered in Helm's install order so ``kubectl apply -f DIR`` creates
the namespace first. Each manifest is then validated against the official Kubernetes JSON
schema of :data:`DEFAULT_K8S_VERSION` (or the version asked for) as shipped by the
``kubernetes-validate`` package, strictly (unknown fields are errors), and against the API
server's naming rules that the schemas leave out (object names, label keys and values,
annotation keys, Ingress hosts; see :mod:`branchenv.k8s_names`).

A bad config value fails in the program before any object is declared; it is reported as a
:class:`~branchenv.errors.ConfigError` (exit 2) and nothing is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv import extras
from branchenv.errors import BranchenvError, ConfigError, EngineError, UsageError
from branchenv.k8s_names import (
    MAX_ANNOTATIONS_BYTES,
    dns1035_label_problem,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)

if TYPE_CHECKING:
    from branchenv.mockruntime import Registration

DEFAULT_K8S_VERSION = "1.30"
"""The Kubernetes version manifests are validated against unless told otherwise."""
DEFAULT_PROGRAM = "infra/k8s"
"""The Kubernetes program, relative to the project directory."""
STACK_TEMPLATE = "stacks/Pulumi.k8s.yaml"
"""Stack config template read by ``branchenv render`` (relative to the project directory)."""

_TOKEN = re.compile(r"kubernetes:(?P<group>[A-Za-z0-9.-]+)/(?P<version>[A-Za-z0-9]+):(?P<kind>\w+)")
_RENDERED_FILE = re.compile(r"\d{2,}-[A-Za-z0-9_.-]+\.yaml")
_NOT_FILE_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")
RENDER_MARKER = ".branchenv-rendered"
"""Written into the output directory: the files the last render wrote (and may replace)."""


def check_out_dir(out_dir: Path) -> Path:
    """Refuse an ``--out`` that cannot be a directory (a file, or a file on its path) before
    anything is rendered; nothing is created here."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out_dir else f"cannot be created: {existing} is a file"
        raise UsageError(
            f"--out {out_dir}: {where}; pass `--out DIR` naming a directory (new or empty)"
        )
    return out_dir


def _clear_previous_render(out_dir: Path) -> None:
    """Remove what an earlier render wrote here (listed in its marker), and nothing else. A
    directory holding manifests that no render of ours wrote is refused: they are someone's."""
    marker = out_dir / RENDER_MARKER
    if marker.is_file():
        for name in marker.read_text(encoding="utf-8").split():
            if _RENDERED_FILE.fullmatch(name):
                (out_dir / name).unlink(missing_ok=True)
        marker.unlink()
    elif out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir() if _RENDERED_FILE.fullmatch(p.name))
        if foreign:
            raise UsageError(
                f"{out_dir} already holds manifests branchenv did not render "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); pass an "
                "empty or new `--out DIR`, nothing was written"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--out {out_dir}: cannot be created ({exc.strerror}); pass `--out DIR` naming a "
            "directory you can write"
        ) from None


_PROVIDER_PREFIX = "pulumi:providers:"
_LABEL_MAPS = frozenset({"labels", "matchLabels"})

# Helm's install order: what others depend on first; kinds not listed go last.
_INSTALL_ORDER: tuple[str, ...] = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
)


@dataclasses.dataclass(frozen=True)
class RenderedObject:
    """One manifest written by :func:`render`."""

    type: str
    api_version: str
    kind: str
    name: str
    namespace: str | None
    file: Path


@dataclasses.dataclass(frozen=True)
class ValidationIssue:
    """One reason a manifest would be rejected: ``path`` is a dotted path into it."""

    file: Path
    object: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file.name}: {self.object}: {where}{self.message}"


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """What :func:`render` wrote and what validation found (``errors`` empty when all pass)."""

    stack: str
    branch: str
    out_dir: Path
    k8s_version: str
    files: tuple[Path, ...]
    objects: tuple[RenderedObject, ...]
    errors: tuple[ValidationIssue, ...]
    outputs: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when every manifest passed validation."""
        return not self.errors


# --- Kubernetes versions ----------------------------------------------------------------------


def supported_k8s_versions() -> tuple[str, ...]:
    """The Kubernetes versions (``major.minor``) whose schemas kubernetes-validate ships."""
    extras.require("k8s", "validating Kubernetes manifests")
    from kubernetes_validate import utils

    versions: list[str] = utils.all_versions()
    return tuple(dict.fromkeys(utils.major_minor(v) for v in versions))


def check_k8s_version(version: str) -> str:
    """``version`` as ``major.minor`` (a leading ``v`` and a patch are dropped); raises
    :class:`UsageError` naming ``--k8s-version`` unless its schemas are shipped."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", version.strip())
    supported = supported_k8s_versions()
    wanted = f"{match[1]}.{match[2]}" if match else None
    if wanted not in supported:
        raise UsageError(
            f"--k8s-version {version!r} is not a Kubernetes version with shipped schemas; "
            f"use one of {', '.join(supported)}"
        )
    return wanted


# --- registrations to manifests ---------------------------------------------------------------


def kubernetes_type(type_token: str) -> tuple[str, str] | None:
    """``(apiVersion, kind)`` of a ``kubernetes:<group>/<version>:<Kind>`` type token, else
    None. The ``core`` group is the legacy one: ``kubernetes:core/v1:Namespace`` is ``v1``."""
    match = _TOKEN.fullmatch(type_token)
    if match is None:
        return None
    group, version, kind = match["group"], match["version"], match["kind"]
    return (version if group == "core" else f"{group}/{version}"), kind


def _plain(value: Any) -> Any:
    """Inputs as the API wants them: the SDK sends every number as a float; whole ones are
    integers (ports, replicas, seconds) and would fail an ``integer`` schema as floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def manifest_from_registration(
    type_token: str, logical_name: str, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The manifest of one registered Kubernetes object.

    Without ``metadata.name`` the object gets its logical name (the real provider would add a
    random suffix). Raises :class:`UsageError` for types that are not plain API objects
    (``...Patch`` and ``...List`` kinds, Helm releases, anything outside ``kubernetes:``).
    """
    parsed = kubernetes_type(type_token)
    if parsed is None or parsed[1].endswith(("Patch", "List")):
        raise UsageError(
            f"`branchenv render` renders Kubernetes API objects only; the program declares "
            f"{type_token!r}. Use `--engine pulumi` against a cluster for it"
        )
    api_version, kind = parsed
    body = _plain(dict(inputs))
    metadata = dict(body.pop("metadata", None) or {})
    metadata.setdefault("name", logical_name)
    body.pop("apiVersion", None)
    body.pop("kind", None)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


# --- validation -------------------------------------------------------------------------------


def validate_manifest(manifest: Mapping[str, Any], k8s_version: str) -> list[tuple[str, str]]:
    """Every ``(path, message)`` problem of ``manifest``: the strict Kubernetes JSON schema of
    ``k8s_version``, then the naming rules the schema leaves out. Empty when it passes."""
    extras.require("k8s", "validating Kubernetes manifests")
    import kubernetes_validate

    problems: list[tuple[str, str]] = []
    try:
        kubernetes_validate.validate(dict(manifest), k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        problems.append((".".join(str(p) for p in exc.path), f"schema: {exc.message}"))
    except (
        kubernetes_validate.SchemaNotFoundError,
        kubernetes_validate.InvalidSchemaError,
        kubernetes_validate.VersionNotSupportedError,
    ) as exc:
        problems.append(("", f"schema: {exc.message}"))
    problems.extend(_name_problems(manifest))
    return problems


def _name_problems(manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    kind = manifest.get("kind")
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        yield "metadata", "missing"
        return
    name = metadata.get("name")
    rule = {"Namespace": dns1123_label_problem, "Service": dns1035_label_problem}.get(
        str(kind), dns1123_subdomain_problem
    )
    problem = rule(name) if isinstance(name, str) else "missing"
    if problem:
        yield "metadata.name", problem
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and (problem := dns1123_label_problem(namespace)):
        yield "metadata.namespace", problem
    yield from _walk(manifest, "")
    if kind == "Ingress":
        spec = manifest.get("spec") or {}
        hosts = [
            (f"spec.rules.{i}.host", rule.get("host"))
            for i, rule in enumerate(spec.get("rules", []))
        ] + [
            (f"spec.tls.{i}.hosts.{j}", host)
            for i, tls in enumerate(spec.get("tls", []))
            for j, host in enumerate(tls.get("hosts", []))
        ]
        for path, host in hosts:
            if isinstance(host, str) and (
                problem := dns1123_subdomain_problem(host.removeprefix("*."))
            ):
                yield path, problem


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Label maps and annotations anywhere in the manifest (pod templates, selectors)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key in _LABEL_MAPS and isinstance(value, Mapping):
                for label, text in value.items():
                    problem = qualified_name_problem(str(label)) or (
                        label_value_problem(text) if isinstance(text, str) else "not a string"
                    )
                    if problem:
                        yield f"{here}.{label}", problem
            elif key == "annotations" and isinstance(value, Mapping):
                size = 0
                for note, text in value.items():
                    size += len(str(note).encode()) + len(str(text).encode())
                    if problem := qualified_name_problem(str(note)):
                        yield f"{here}.{note}", problem
                if size > MAX_ANNOTATIONS_BYTES:
                    yield here, f"annotations total {size} bytes; the limit is 262144"
            else:
                yield from _walk(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}.{i}")


# --- config -----------------------------------------------------------------------------------


def load_stack_template(path: Path) -> dict[str, str]:
    """The ``config:`` of a stack file (``stacks/Pulumi.k8s.yaml``) as Pulumi config strings;
    empty when the file does not exist."""
    import yaml

    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the template") from exc
    config = data.get("config") if isinstance(data, dict) else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: `config:` must be a map of keys to values")
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, bool):
            flat[str(key)] = "true" if value else "false"
        elif isinstance(value, dict | list):
            flat[str(key)] = json.dumps(value)
        else:
            flat[str(key)] = str(value)
    return flat


def parse_config_pairs(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--config KEY=VALUE`` pairs; keys are namespaced like Pulumi's (``branchenv:cpuLimit``)."""
    config: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or ":" not in key or key.startswith(":") or key.endswith(":"):
            raise UsageError(
                f"--config {pair!r} must be KEY=VALUE with a namespaced key, "
                "e.g. --config branchenv:cpuLimit=500m"
            )
        config[key] = value
    return config


# --- render -----------------------------------------------------------------------------------


def render(
    program: Path,
    *,
    branch: str,
    out_dir: Path,
    profile: str | None = None,
    k8s_version: str = DEFAULT_K8S_VERSION,
    config: Mapping[str, str] | None = None,
    ttl: str = "24h",
    owner: str = "unknown",
    commit: str = "unknown",
    now: dt.datetime | None = None,
) -> RenderResult:
    """Render ``program`` for ``branch`` into ``out_dir`` and validate every manifest.

    ``config`` is the stack config (``stacks/Pulumi.k8s.yaml`` plus overrides); branchenv sets
    ``branchenv:prefix`` and ``branchenv:tags`` from the branch and a fresh
    :class:`~branchenv.metadata.StackMetadata` (``ttl``, ``owner``, ``commit``, ``now``), and
    ``branchenv:profile`` when ``profile`` is given. Files rendered earlier into ``out_dir``
    (``NN-*.yaml``) are removed first; other files there are left alone.

    Raises :class:`UsageError` (exit 2) for bad input, including any config value the program
    rejects, before anything is written. Validation problems do not raise: they are in
    ``errors`` of the result (the files are written so they can be inspected).
    """
    import yaml

    from branchenv.metadata import StackMetadata, parse_ttl
    from branchenv.mockruntime import run_program
    from branchenv.naming import names_for
    from branchenv.programs import detect_program

    version = check_k8s_version(k8s_version)
    check_out_dir(out_dir)
    program = program.resolve()
    project = detect_program(program).project
    names = names_for(branch)
    metadata = StackMetadata.create(
        stack=names.stack,
        branch=branch,
        owner=owner,
        commit=commit,
        ttl=parse_ttl(ttl),
        now=now or dt.datetime.now(dt.UTC),
        target="local",
        engine="inprocess",
        project=project,
    )
    full = dict(config or {})
    full["branchenv:prefix"] = names.prefix
    full["branchenv:tags"] = json.dumps(metadata.to_tags(), sort_keys=True)
    if profile is not None:
        full["branchenv:profile"] = profile

    def declare(reg: Registration) -> tuple[str, dict[str, Any]]:
        meta = reg.inputs.get("metadata") or {}
        name = str(meta.get("name") or reg.name)
        namespace = meta.get("namespace")
        return (f"{namespace}/{name}" if namespace else name), dict(reg.inputs)

    try:
        run = run_program(
            program_dir=program,
            project=project,
            stack=names.stack,
            config=full,
            new_resource=declare,
            preview=False,
        )
    except EngineError as exc:
        usage = _usage_cause(exc)
        if usage is not None:
            raise ConfigError(f"{usage} (nothing was rendered)") from exc
        raise

    manifests = [
        (reg.type, manifest_from_registration(reg.type, reg.name, reg.inputs))
        for reg in run.registrations
        if reg.custom and not reg.type.startswith(_PROVIDER_PREFIX)
    ]
    manifests.sort(key=_apply_order)
    width = max(2, len(str(len(manifests))))

    _clear_previous_render(out_dir)
    objects: list[RenderedObject] = []
    errors: list[ValidationIssue] = []
    for index, (type_token, manifest) in enumerate(manifests, start=1):
        kind, meta = manifest["kind"], manifest["metadata"]
        name = str(meta.get("name", ""))
        file_name = f"{index:0{width}d}-{kind.lower()}-{_NOT_FILE_CHAR.sub('_', name)}.yaml"
        path = out_dir / file_name
        path.write_text(
            yaml.safe_dump(manifest, sort_keys=True, allow_unicode=True), encoding="utf-8"
        )
        objects.append(
            RenderedObject(
                type=type_token,
                api_version=manifest["apiVersion"],
                kind=kind,
                name=name,
                namespace=meta.get("namespace"),
                file=path,
            )
        )
        for where, message in validate_manifest(manifest, version):
            errors.append(ValidationIssue(path, f"{kind}/{name}", where, message))
    (out_dir / RENDER_MARKER).write_text(
        "".join(f"{o.file.name}\n" for o in objects), encoding="utf-8"
    )
    return RenderResult(
        stack=names.stack,
        branch=branch,
        out_dir=out_dir,
        k8s_version=version,
        files=tuple(o.file for o in objects),
        objects=tuple(objects),
        errors=tuple(errors),
        outputs=dict(run.outputs),
    )


def _apply_order(entry: tuple[str, dict[str, Any]]) -> tuple[int, str, str, str]:
    """Sort key: Helm's install order by kind, then namespace and name (stable files)."""
    manifest = entry[1]
    kind = manifest["kind"]
    rank = _INSTALL_ORDER.index(kind) if kind in _INSTALL_ORDER else len(_INSTALL_ORDER)
    meta = manifest["metadata"]
    return rank, kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _usage_cause(exc: BaseException) -> BranchenvError | None:
    """The usage error (a config value the program rejected) behind an engine error, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, UsageError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
