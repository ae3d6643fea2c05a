"""The Kubernetes program (infra/k8s/__main__.py) on the Pulumi SDK's mock runtime: the objects
it declares, quota and limits per profile, labels and annotations on every object, the
default-deny policy and its allows, probes, outputs, size overrides and config errors.

The program runs through branchenv's mock-runtime runner (the one `branchenv render` uses);
its spec module's pure functions are tested directly from tables.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.errors import EXIT_USAGE, EngineError
from branchenv.k8s_names import label_value_problem, qualified_name_problem
from branchenv.metadata import StackMetadata
from branchenv.mockruntime import Registration, run_program
from branchenv.naming import names_for
from branchenv.render import manifest_from_registration

PROGRAM_DIR = Path(__file__).resolve().parents[2] / "infra" / "k8s"
if str(PROGRAM_DIR) not in sys.path:
    sys.path.insert(0, str(PROGRAM_DIR))
import k8s_stack_spec as spec  # noqa: E402

NOW = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
BRANCH = "feature/ABC-123_fix.v2"
EXPECTED_KINDS = Counter(
    {
        "Namespace": 1,
        "ResourceQuota": 1,
        "LimitRange": 1,
        "NetworkPolicy": 4,
        "Deployment": 1,
        "Service": 1,
        "Ingress": 1,
    }
)


def _metadata(branch: str = BRANCH, ttl: dt.timedelta = dt.timedelta(hours=24)) -> StackMetadata:
    return StackMetadata.create(
        stack=names_for(branch).stack,
        branch=branch,
        owner="ada@example.com",
        commit="0" * 40,
        ttl=ttl,
        now=NOW,
        target="local",
        engine="inprocess",
        project="branchenv-k8s",
    )


def _config(branch: str = BRANCH, **extra: str) -> dict[str, str]:
    config = {
        "branchenv:prefix": names_for(branch).prefix,
        "branchenv:tags": json.dumps(_metadata(branch).to_tags()),
    }
    config.update({f"branchenv:{k}": v for k, v in extra.items()})
    return config


def _run(config: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    def declare(reg: Registration) -> tuple[str, dict[str, Any]]:
        return f"{reg.name}-id", dict(reg.inputs)

    run = run_program(
        program_dir=PROGRAM_DIR,
        project="branchenv-k8s",
        stack=config["branchenv:prefix"],
        config=config,
        new_resource=declare,
        preview=False,
    )
    manifests = [
        manifest_from_registration(r.type, r.name, r.inputs) for r in run.registrations if r.custom
    ]
    return manifests, run.outputs


@pytest.fixture(scope="module")
def ephemeral() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return _run(_config())


@pytest.fixture(scope="module")
def prodlike() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return _run(_config(profile="prodlike"))


def _one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def q(text: str) -> Any:
    return spec.parse_quantity(text, key="test")


# --- the objects ------------------------------------------------------------------------------


def test_declares_the_expected_objects(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    assert Counter(m["kind"] for m in manifests) == EXPECTED_KINDS
    prefix = names_for(BRANCH).prefix
    for m in manifests:
        if m["kind"] != "Namespace":
            assert m["metadata"]["namespace"] == prefix, m["kind"]
    assert _one(manifests, "Namespace")["metadata"]["name"] == prefix


@pytest.mark.parametrize("profile_name", ["ephemeral", "prodlike"])
def test_quota_and_limit_range_sized_by_profile(
    profile_name: str, ephemeral: Any, prodlike: Any
) -> None:
    manifests, outputs = ephemeral if profile_name == "ephemeral" else prodlike
    profile = spec.PROFILES[profile_name]
    assert outputs["profile"] == profile_name
    hard = _one(manifests, "ResourceQuota")["spec"]["hard"]
    assert hard["limits.cpu"] == profile.quota_limits_cpu
    assert hard["requests.memory"] == profile.quota_requests_memory
    assert hard["pods"] == str(profile.quota_pods)
    assert hard["services.loadbalancers"] == "0"
    assert hard["services.nodeports"] == "0"
    (item,) = _one(manifests, "LimitRange")["spec"]["limits"]
    assert item["type"] == "Container"
    assert item["max"] == {
        "cpu": profile.container_max_cpu,
        "memory": profile.container_max_memory,
    }
    assert item["default"] == {"cpu": profile.cpu_limit, "memory": profile.memory_limit}
    assert item["defaultRequest"] == {"cpu": profile.cpu_request, "memory": profile.memory_request}
    assert _one(manifests, "Deployment")["spec"]["replicas"] == profile.replicas


@pytest.mark.parametrize("profile_name", ["ephemeral", "prodlike"])
def test_container_resources_fit_limit_range_and_quota(
    profile_name: str, ephemeral: Any, prodlike: Any
) -> None:
    manifests, _ = ephemeral if profile_name == "ephemeral" else prodlike
    (item,) = _one(manifests, "LimitRange")["spec"]["limits"]
    hard = _one(manifests, "ResourceQuota")["spec"]["hard"]
    resources = _container(manifests)["resources"]
    deployment = _one(manifests, "Deployment")["spec"]
    pods = deployment["replicas"] + deployment["strategy"]["rollingUpdate"]["maxSurge"]
    for resource in ("cpu", "memory"):
        request, limit = q(resources["requests"][resource]), q(resources["limits"][resource])
        assert q(item["min"][resource]) <= request <= limit <= q(item["max"][resource])
        assert pods * request <= q(hard[f"requests.{resource}"])
        assert pods * limit <= q(hard[f"limits.{resource}"])


def test_every_object_labelled_and_annotated(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    prefix = names_for(BRANCH).prefix
    for m in manifests:
        labels = m["metadata"]["labels"]
        annotations = m["metadata"]["annotations"]
        assert labels[spec.MANAGED_BY_LABEL] == "branchenv", m["kind"]
        assert labels[spec.STACK_LABEL] == prefix, m["kind"]
        for key, value in labels.items():
            assert qualified_name_problem(key) is None
            assert label_value_problem(value) is None, (key, value)
        assert annotations["branchenv.dev/branch"] == BRANCH
        assert annotations["branchenv.dev/owner"] == "ada@example.com"
        assert annotations["branchenv.dev/expires-at"] == "2030-01-02T12:00:00Z"
        assert all(qualified_name_problem(k) is None for k in annotations)
    pod_labels = _one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[spec.STACK_LABEL] == prefix


def test_namespace_carries_kube_janitor_annotations(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    annotations = _one(manifests, "Namespace")["metadata"]["annotations"]
    assert annotations["janitor/ttl"] == "1d"
    assert annotations["janitor/expires"] == "2030-01-02T12:00:00Z"
    labels = _one(manifests, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_default_deny_network_policy(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    spec_ = _one(manifests, "NetworkPolicy", "default-deny")["spec"]
    assert spec_["podSelector"] == {}
    assert sorted(spec_["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in spec_ and "egress" not in spec_


def test_allows_ingress_controller_dns_and_same_namespace(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    ingress = _one(manifests, "NetworkPolicy", "allow-ingress-controller")["spec"]
    (rule,) = ingress["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": spec.DEFAULT_INGRESS_NAMESPACE
    }
    assert rule["ports"] == [{"protocol": "TCP", "port": spec.SERVICE_PORT}]
    assert ingress["podSelector"]["matchLabels"] == spec.service_labels(names_for(BRANCH).prefix)

    dns = _one(manifests, "NetworkPolicy", "allow-dns-egress")["spec"]
    assert dns["policyTypes"] == ["Egress"]
    (rule,) = dns["egress"]
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]

    same = _one(manifests, "NetworkPolicy", "allow-same-namespace")["spec"]
    assert same["egress"] == [{"to": [{"podSelector": {}}]}]
    assert same["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_probes_and_ports(ephemeral: Any) -> None:
    manifests, _ = ephemeral
    container = _container(manifests)
    assert container["image"] == spec.DEFAULT_IMAGE
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
        assert container[probe]["periodSeconds"] > 0
    service = _one(manifests, "Service")["spec"]
    assert service["ports"][0]["port"] == 8080
    assert service["selector"] == spec.service_labels(names_for(BRANCH).prefix)


def test_outputs_and_ingress(ephemeral: Any) -> None:
    manifests, outputs = ephemeral
    prefix = names_for(BRANCH).prefix
    host = f"{prefix}.branches.example.com"
    assert outputs["namespace"] == prefix
    assert outputs["host"] == host
    assert outputs["service_url"] == f"http://orders.{prefix}.svc.cluster.local:8080"
    assert outputs["ingress_url"] == f"http://{host}"
    ingress = _one(manifests, "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    (rule,) = ingress["rules"]
    assert rule["host"] == host
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "orders", "port": {"number": 8080}}


def test_config_overrides_reach_the_objects() -> None:
    manifests, outputs = _run(
        _config(
            cpuLimit="500m",
            replicas="2",
            baseDomain="dev.example.org",
            ingressClassName="traefik",
            image="registry.local:5000/orders:v2",
        )
    )
    assert _container(manifests)["resources"]["limits"]["cpu"] == "500m"
    assert _container(manifests)["image"] == "registry.local:5000/orders:v2"
    assert _one(manifests, "Deployment")["spec"]["replicas"] == 2
    assert _one(manifests, "Ingress")["spec"]["ingressClassName"] == "traefik"
    assert outputs["host"].endswith(".dev.example.org")


def test_bad_config_fails_before_any_object_with_a_usage_error() -> None:
    declared: list[str] = []

    def declare(reg: Registration) -> tuple[str, dict[str, Any]]:
        declared.append(reg.type)
        return "id", dict(reg.inputs)

    with pytest.raises(EngineError) as info:
        run_program(
            program_dir=PROGRAM_DIR,
            project="branchenv-k8s",
            stack="s",
            config=_config(cpuLimit="12 cores"),
            new_resource=declare,
            preview=False,
        )
    assert declared == []
    cause = info.value.__cause__
    assert cause is not None and isinstance(cause.__cause__, spec.StackConfigError)
    assert cause.__cause__.exit_code == EXIT_USAGE
    assert "branchenv:cpuLimit" in str(info.value)


# --- the spec's pure functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("cpuLimit", "12 cores", "branchenv:cpuLimit '12 cores' is not a Kubernetes quantity"),
        ("memoryLimit", "1 GB", "branchenv:memoryLimit"),
        ("cpuRequest", "-1", "branchenv:cpuRequest"),
        ("cpuLimit", "0", "must be greater than zero"),
        ("cpuRequest", "500m", "must not exceed its limit"),
        ("cpuLimit", "8", "container range"),
        ("replicas", "8", "namespace quota"),
        ("replicas", "two", "branchenv:replicas"),
        ("replicas", "12", "namespace quota"),
        ("profile", "huge", "Valid profiles: ephemeral, prodlike"),
        ("baseDomain", "Bad_Domain", "branchenv:baseDomain 'Bad_Domain'"),
        ("baseDomain", "*.example.com", "branchenv:baseDomain"),
        ("baseDomain", "example..com", "branchenv:baseDomain"),
        ("baseDomain", ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 30, "com"]), "253"),
        ("ingressClassName", "Nginx Class", "branchenv:ingressClassName"),
        ("ingressNamespace", "ingress.nginx", "branchenv:ingressNamespace"),
        ("image", "orders image", "branchenv:image"),
        ("image", "Orders:latest", "branchenv:image"),
        ("prefix", "Feature/X", "branchenv:prefix"),
        ("tags", "{not json", "branchenv:tags is not JSON"),
        ("tags", '{"a": 1}', "string keys to string values"),
        ("tags", '{"branchenv:branch": "x"}', "managed-by marker"),
    ],
)
def test_stack_config_rejects_bad_values(key: str, value: str, fragment: str) -> None:
    config = _config()
    config[f"branchenv:{key}"] = value
    with pytest.raises(spec.StackConfigError) as info:
        spec.stack_config(lambda k: config.get(f"branchenv:{k}"))
    assert fragment in str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)


def test_stack_config_requires_prefix_and_tags() -> None:
    with pytest.raises(spec.StackConfigError, match="branchenv:prefix"):
        spec.stack_config(lambda k: None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", "0.25"),
        ("1", "1"),
        ("1.5", "1.5"),
        ("512Mi", str(512 * 2**20)),
        ("1Gi", str(2**30)),
        ("2k", "2000"),
        ("1e3", "1000"),
        ("100u", "0.0001"),
    ],
)
def test_parse_quantity(text: str, value: str) -> None:
    from decimal import Decimal

    assert q(text) == Decimal(value)


@pytest.mark.parametrize("text", ["12 cores", "1GB", "", "m", "1.2.3", "-1", "0", "0m", "1 Gi"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(spec.StackConfigError, match="branchenv:cpuLimit"):
        spec.parse_quantity(text, key="branchenv:cpuLimit")


@pytest.mark.parametrize(
    ("ttl", "text"),
    [
        (dt.timedelta(hours=24), "1d"),
        (dt.timedelta(days=7), "7d"),
        (dt.timedelta(hours=2), "2h"),
        (dt.timedelta(minutes=90), "90m"),
        (dt.timedelta(seconds=61), "61s"),
    ],
)
def test_janitor_ttl_uses_one_unit(ttl: dt.timedelta, text: str) -> None:
    assert spec.janitor_ttl(ttl) == text


def test_janitor_expires_format() -> None:
    moment = dt.datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert spec.janitor_expires(moment) == "2030-01-02T01:04:05Z"


@given(st.text(max_size=300).filter(lambda b: any(ch.isalnum() for ch in b)))
def test_labels_and_annotation_keys_valid_for_any_branch(branch: str) -> None:
    try:
        names = names_for(branch)
    except Exception:  # a branch with no usable letters is refused by naming itself
        return
    md = _metadata(branch)
    for key, value in spec.common_labels(names.prefix, md).items():
        assert qualified_name_problem(key) is None
        assert label_value_problem(value) is None, value
    for key in spec.namespace_annotations(md.to_tags(), md):
        assert qualified_name_problem(key) is None, key
