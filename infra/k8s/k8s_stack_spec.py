"""The pure pieces of the Kubernetes namespace-per-branch stack: sizes per profile (with their
overrides), names, labels, annotations and the kube-janitor TTL, all read from config.

No Pulumi resources here (``__main__.py`` declares them), so all of it is plain data that the
program's tests check directly. Unlike the AWS program's spec this one imports ``branchenv``
(installed in the same virtualenv) for the stack metadata format and the Kubernetes name rules.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from branchenv import naming
from branchenv.errors import ConfigError
from branchenv.k8s_names import (
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_value,
    name_part,
)
from branchenv.metadata import TAG_PREFIX, MetadataFormatError, StackMetadata, decode_tag_value

SERVICE_NAME = "orders"
"""Name of the reference service's Deployment, Service and Ingress inside the namespace."""
SERVICE_PORT = 8080
HEALTH_PATH = "/health"
DEFAULT_IMAGE = "ghcr.io/branchenv/orders:latest"
DEFAULT_BASE_DOMAIN = "branches.example.com"
DEFAULT_INGRESS_CLASS = "nginx"
DEFAULT_INGRESS_NAMESPACE = "ingress-nginx"
ROLLING_SURGE = 1
"""Extra pods a rolling update runs at once; the quota must leave room for them."""

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
STACK_LABEL = "branchenv.dev/stack"
BRANCH_LABEL = "branchenv.dev/branch"
ANNOTATION_PREFIX = "branchenv.dev/"
JANITOR_TTL = "janitor/ttl"
JANITOR_EXPIRES = "janitor/expires"


class StackConfigError(ConfigError):
    """Config the program cannot run with; the message names the key and how to fix it.

    A :class:`branchenv.errors.ConfigError`, so ``branchenv`` reports it with exit code 2.
    """


# --- quantities -------------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"(?P<number>\+?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(text: str, *, key: str) -> Decimal:
    """A Kubernetes resource quantity (``250m``, ``1``, ``512Mi``, ``1e3``) as a Decimal in base
    units (cores, bytes). Raises :class:`StackConfigError` naming ``key`` for anything else,
    zero and negative values included."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise StackConfigError(
            f"{key} {text!r} is not a Kubernetes quantity; write e.g. 500m or 2 for CPU, "
            f"256Mi or 1Gi for memory (`pulumi config set {key} 500m`, or "
            f"`--config {key}=500m` with `branchenv render`)"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise StackConfigError(f"{key} {text!r} is not a Kubernetes quantity") from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    else:
        value = number * Decimal(10) ** int(suffix[1:])
    if value <= 0:
        raise StackConfigError(f"{key} {text!r} must be greater than zero")
    return value


# --- profiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Sizes of one stack shape. Every profile creates the same objects.

    Container sizes (``cpu_request`` ... ``memory_limit``) are the reference service's; the
    LimitRange bounds every container of the namespace (``container_*``) and gives containers
    that state nothing the defaults; the ResourceQuota caps the namespace (``quota_*``).
    """

    name: str
    replicas: int
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    container_min_cpu: str
    container_min_memory: str
    container_max_cpu: str
    container_max_memory: str
    quota_requests_cpu: str
    quota_requests_memory: str
    quota_limits_cpu: str
    quota_limits_memory: str
    quota_pods: int
    quota_services: int


PROFILES: Mapping[str, Profile] = {
    # Short-lived branch namespaces: one small replica, a namespace cap of two cores.
    "ephemeral": Profile(
        name="ephemeral",
        replicas=1,
        cpu_request="50m",
        cpu_limit="250m",
        memory_request="64Mi",
        memory_limit="256Mi",
        container_min_cpu="10m",
        container_min_memory="16Mi",
        container_max_cpu="1",
        container_max_memory="1Gi",
        quota_requests_cpu="1",
        quota_requests_memory="1Gi",
        quota_limits_cpu="2",
        quota_limits_memory="2Gi",
        quota_pods=10,
        quota_services=5,
    ),
    # Production sizes, for the namespaces that rehearse a release.
    "prodlike": Profile(
        name="prodlike",
        replicas=2,
        cpu_request="250m",
        cpu_limit="1",
        memory_request="256Mi",
        memory_limit="1Gi",
        container_min_cpu="10m",
        container_min_memory="16Mi",
        container_max_cpu="2",
        container_max_memory="4Gi",
        quota_requests_cpu="4",
        quota_requests_memory="8Gi",
        quota_limits_cpu="8",
        quota_limits_memory="16Gi",
        quota_pods=30,
        quota_services=10,
    ),
}
DEFAULT_PROFILE = "ephemeral"

OVERRIDE_KEYS: Mapping[str, str] = {
    "branchenv:cpuRequest": "cpu_request",
    "branchenv:cpuLimit": "cpu_limit",
    "branchenv:memoryRequest": "memory_request",
    "branchenv:memoryLimit": "memory_limit",
    "branchenv:replicas": "replicas",
}
"""Config keys that override one size of the chosen profile, and the field each sets."""


def profile_named(name: str | None) -> Profile:
    """The profile called ``name`` (``ephemeral`` when None); an unknown one names the valid."""
    chosen = DEFAULT_PROFILE if name is None else name
    try:
        return PROFILES[chosen]
    except KeyError:
        raise StackConfigError(
            f"unknown branchenv:profile {chosen!r}. Valid profiles: {', '.join(PROFILES)} "
            "(set it with `pulumi config set branchenv:profile ephemeral`)"
        ) from None


def sized_profile(name: str | None, overrides: Mapping[str, str | None]) -> Profile:
    """The profile ``name`` with the sizes set in ``overrides`` (keys of :data:`OVERRIDE_KEYS`;
    None values ignored), checked: every quantity parses, requests stay within limits, the
    container fits the LimitRange and the quota holds every replica plus a rolling-update surge.
    """
    profile = profile_named(name)
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        if raw is None:
            continue
        field = OVERRIDE_KEYS.get(key)
        if field is None:
            raise StackConfigError(
                f"unknown size override {key!r}. Valid keys: {', '.join(OVERRIDE_KEYS)}"
            )
        if field == "replicas":
            if not raw.strip().isdigit() or not 1 <= int(raw) <= 50:
                raise StackConfigError(
                    f"branchenv:replicas {raw!r} must be a whole number from 1 to 50 "
                    "(set it with `pulumi config set branchenv:replicas 2`)"
                )
            changes[field] = int(raw)
        else:
            parse_quantity(raw, key=key)
            changes[field] = raw
    sized = replace(profile, **changes)
    check_sizes(sized)
    return sized


def check_sizes(p: Profile) -> None:
    """Raise :class:`StackConfigError` unless the sizes of ``p`` are consistent (see
    :func:`sized_profile`)."""
    for resource, unit in (("cpu", "CPU"), ("memory", "memory")):
        request_key, limit_key = f"branchenv:{resource}Request", f"branchenv:{resource}Limit"
        request = parse_quantity(getattr(p, f"{resource}_request"), key=request_key)
        limit = parse_quantity(getattr(p, f"{resource}_limit"), key=limit_key)
        low = parse_quantity(getattr(p, f"container_min_{resource}"), key="container minimum")
        high = parse_quantity(getattr(p, f"container_max_{resource}"), key="container maximum")
        if request > limit:
            raise StackConfigError(
                f"{request_key} {getattr(p, f'{resource}_request')} is above {limit_key} "
                f"{getattr(p, f'{resource}_limit')}; a {unit} request must not exceed its limit"
            )
        if request < low or limit > high:
            raise StackConfigError(
                f"the service's {unit} ({getattr(p, f'{resource}_request')} request, "
                f"{getattr(p, f'{resource}_limit')} limit) must stay within the {p.name} "
                f"profile's container range {getattr(p, f'container_min_{resource}')}.."
                f"{getattr(p, f'container_max_{resource}')}; lower {limit_key} "
                "or use `--profile prodlike`"
            )
        pods = p.replicas + ROLLING_SURGE
        for kind, each in (("requests", request), ("limits", limit)):
            cap_text = getattr(p, f"quota_{kind}_{resource}")
            if pods * each > parse_quantity(cap_text, key="quota"):
                raise StackConfigError(
                    f"{p.replicas} replicas (+{ROLLING_SURGE} during a rollout) of the service "
                    f"need more {unit} {kind} than the {p.name} profile's namespace quota "
                    f"{cap_text}; lower branchenv:replicas or branchenv:{resource}"
                    f"{kind[:-1].capitalize()}, or use `--profile prodlike`"
                )
    if p.replicas + ROLLING_SURGE > p.quota_pods:
        raise StackConfigError(
            f"branchenv:replicas {p.replicas} leaves no room in the {p.name} profile's quota of "
            f"{p.quota_pods} pods; lower branchenv:replicas"
        )


# --- names ------------------------------------------------------------------------------------


def namespace_name(prefix: str) -> str:
    """The branch's namespace: the prefix itself (a branchenv prefix is an RFC 1123 label)."""
    problem = naming.k8s_label(prefix)
    if (
        problem is not None
        or not naming.MIN_PREFIX_LEN <= len(prefix) <= naming.MAX_PREFIX_LEN
        or not prefix[0].isalpha()
    ):
        raise StackConfigError(
            f"branchenv:prefix {prefix!r} is not a branchenv prefix (3-{naming.MAX_PREFIX_LEN} "
            "of lowercase letters, digits and single hyphens, starting with a letter); let "
            "branchenv set it (`branchenv render`, `branchenv up`) or derive it with "
            "branchenv.naming.names_for"
        )
    return prefix


def ingress_host(prefix: str, base_domain: str) -> str:
    """``<prefix>.<base_domain>``; the base domain must be a lowercase DNS name."""
    if base_domain.startswith("*.") or dns1123_subdomain_problem(base_domain) is not None:
        raise StackConfigError(
            f"branchenv:baseDomain {base_domain!r} is not a DNS domain (lowercase labels of "
            "letters, digits and '-' joined by dots, e.g. branches.example.com); fix it with "
            "`pulumi config set branchenv:baseDomain branches.example.com`"
        )
    host = f"{prefix}.{base_domain}"
    if dns1123_subdomain_problem(host) is not None:
        raise StackConfigError(
            f"branchenv:baseDomain {base_domain!r} makes the host {len(host)} characters; "
            "hosts are limited to 253: use a shorter base domain"
        )
    return host


def ingress_class(name: str) -> str:
    """An IngressClass name (an RFC 1123 subdomain)."""
    if dns1123_subdomain_problem(name) is not None:
        raise StackConfigError(
            f"branchenv:ingressClassName {name!r} is not a valid IngressClass name (lowercase "
            "letters, digits, '-' and '.'); set it to your controller's class, e.g. nginx"
        )
    return name


def ingress_namespace(name: str) -> str:
    """The namespace of the ingress controller (allowed in by the NetworkPolicy)."""
    problem = dns1123_label_problem(name)
    if problem is not None:
        raise StackConfigError(
            f"branchenv:ingressNamespace {name!r} is not a namespace name: {problem}; set it "
            "to the namespace your ingress controller runs in, e.g. ingress-nginx"
        )
    return name


_IMAGE = re.compile(
    r"[a-z0-9][a-z0-9._/-]*(?::[0-9]+/[a-z0-9._/-]+)?"  # [registry[:port]/]repository
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # :tag
    r"(?:@sha256:[a-f0-9]{64})?",  # @digest
    re.ASCII,
)


def image_reference(image: str) -> str:
    """A container image reference: ``[registry[:port]/]repository[:tag][@sha256:digest]``."""
    if _IMAGE.fullmatch(image) is None:
        raise StackConfigError(
            f"branchenv:image {image!r} is not an image reference; write it like {DEFAULT_IMAGE}"
        )
    return image


def service_url(namespace: str) -> str:
    """The in-cluster URL of the service."""
    return f"http://{SERVICE_NAME}.{namespace}.svc.cluster.local:{SERVICE_PORT}"


# --- metadata ---------------------------------------------------------------------------------


def parse_metadata(raw: Any) -> tuple[dict[str, str], StackMetadata]:
    """``branchenv:tags`` (JSON-decoded by pulumi.Config) as tags and the stack metadata."""
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise StackConfigError(
            "branchenv:tags must be a JSON object of string keys to string values "
            "(branchenv sets it from the stack metadata; see `branchenv up`)"
        )
    try:
        metadata = StackMetadata.from_tags(raw)
    except MetadataFormatError as exc:
        raise StackConfigError(f"branchenv:tags: {exc}; let branchenv set the tags") from exc
    if metadata is None:
        raise StackConfigError(
            "branchenv:tags lacks the branchenv:managed-by marker; let branchenv set the tags "
            "(`branchenv up`, `branchenv render`)"
        )
    return dict(raw), metadata


def common_labels(prefix: str, metadata: StackMetadata) -> dict[str, str]:
    """Labels on every object: selectable, valid label values (long or odd values hashed)."""
    return {
        MANAGED_BY_LABEL: "branchenv",
        "app.kubernetes.io/part-of": "branchenv",
        STACK_LABEL: label_value(prefix),
        BRANCH_LABEL: label_value(metadata.branch),
    }


def service_labels(prefix: str) -> dict[str, str]:
    """The reference service's selector labels (a Deployment's selector never changes)."""
    return {"app.kubernetes.io/name": SERVICE_NAME, "app.kubernetes.io/instance": prefix}


def metadata_annotations(tags: Mapping[str, str]) -> dict[str, str]:
    """Every metadata tag as ``branchenv.dev/<name>``, its value decoded to the original text."""
    annotations: dict[str, str] = {}
    for key, value in sorted(tags.items()):
        try:
            text, _truncated = decode_tag_value(value)
        except ValueError:
            text = value
        annotations[ANNOTATION_PREFIX + name_part(key.removeprefix(TAG_PREFIX))] = text
    return annotations


_JANITOR_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def janitor_ttl(ttl: dt.timedelta) -> str:
    """A TTL as kube-janitor's ``janitor/ttl`` wants it: one number and one unit of
    ``s m h d`` (``24h`` is ``1d``, ``90m``, ``7d``), the largest unit that expresses it
    exactly (kube-janitor also reads ``w``; days read better)."""
    seconds = int(ttl.total_seconds())
    if seconds <= 0:
        raise StackConfigError(
            "the stack's expires-at is not after its created-at; set a positive --ttl"
        )
    for unit, size in _JANITOR_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a count of 's'")


def janitor_expires(moment: dt.datetime) -> str:
    """An instant as kube-janitor's ``janitor/expires``: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_annotations(tags: Mapping[str, str], metadata: StackMetadata) -> dict[str, str]:
    """The namespace's annotations: the metadata plus kube-janitor's TTL and expiry."""
    return {
        **metadata_annotations(tags),
        JANITOR_TTL: janitor_ttl(metadata.expires_at - metadata.created_at),
        JANITOR_EXPIRES: janitor_expires(metadata.expires_at),
    }


# --- the whole config -------------------------------------------------------------------------


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from config, checked."""

    prefix: str
    namespace: str
    tags: dict[str, str]
    metadata: StackMetadata
    profile: Profile
    image: str
    host: str
    ingress_class: str
    ingress_namespace: str


def stack_config(get: Callable[[str], str | None]) -> StackConfig:
    """Read and check the stack's config; ``get(key)`` returns the raw value of
    ``branchenv:<key>`` or None. Raises :class:`StackConfigError` on the first bad value."""

    def require(key: str) -> str:
        value = get(key)
        if value is None:
            raise StackConfigError(
                f"missing required config branchenv:{key}; branchenv sets it "
                "(`branchenv up`, `branchenv render`)"
            )
        return value

    prefix = require("prefix")
    namespace = namespace_name(prefix)
    try:
        raw_tags = json.loads(require("tags"))
    except json.JSONDecodeError as exc:
        raise StackConfigError(f"branchenv:tags is not JSON ({exc}); let branchenv set it") from exc
    tags, metadata = parse_metadata(raw_tags)
    profile = sized_profile(
        get("profile"), {key: get(key.removeprefix("branchenv:")) for key in OVERRIDE_KEYS}
    )
    return StackConfig(
        prefix=prefix,
        namespace=namespace,
        tags=tags,
        metadata=metadata,
        profile=profile,
        image=image_reference(get("image") or DEFAULT_IMAGE),
        host=ingress_host(prefix, get("baseDomain") or DEFAULT_BASE_DOMAIN),
        ingress_class=ingress_class(get("ingressClassName") or DEFAULT_INGRESS_CLASS),
        ingress_namespace=ingress_namespace(get("ingressNamespace") or DEFAULT_INGRESS_NAMESPACE),
    )
