"""branchenv's Kubernetes stack: one namespace per branch on a shared cluster, holding the
reference "orders" service behind an Ingress, fenced by a quota, a LimitRange and NetworkPolicies.

Config (``pulumi config`` / the stack file; branchenv sets the ``branchenv:`` keys it owns):

- ``branchenv:prefix`` (required): the namespace name (a branchenv prefix is an RFC 1123 label).
- ``branchenv:tags`` (required): JSON object of stack metadata tags; they become
  ``branchenv.dev/<key>`` annotations on every object, and the expiry becomes kube-janitor's
  ``janitor/ttl`` and ``janitor/expires`` on the namespace.
- ``branchenv:profile``: ``ephemeral`` (default) or ``prodlike``: quota, limits, replicas.
- ``branchenv:cpuRequest``, ``cpuLimit``, ``memoryRequest``, ``memoryLimit``, ``replicas``:
  override one size of the profile (checked against the LimitRange and the quota).
- ``branchenv:image`` (default ghcr.io/branchenv/orders:latest), ``branchenv:baseDomain``
  (default branches.example.com; the host is ``<prefix>.<baseDomain>``),
  ``branchenv:ingressClassName`` (default nginx), ``branchenv:ingressNamespace`` (where the
  ingress controller runs, allowed in by the NetworkPolicy; default ingress-nginx).

The cluster is the default provider's: the user's kubeconfig (``kubernetes:context`` selects a
context). Every config value is checked before the first object is declared, so a bad one
fails the run with nothing applied. ``branchenv render`` runs this program on the SDK's mock
runtime and writes and validates the manifests instead.
"""

from __future__ import annotations

import os
import sys

import pulumi
import pulumi_kubernetes as k8s

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import k8s_stack_spec as spec  # noqa: E402 - needs _HERE on sys.path first


def _read_config() -> spec.StackConfig:
    cfg = pulumi.Config("branchenv")
    try:
        return spec.stack_config(cfg.get)
    except spec.StackConfigError as exc:
        # RunError: the engine prints the message without a traceback. The cause is kept, so
        # branchenv (which runs this program itself) reports it as a usage error, exit code 2.
        raise pulumi.RunError(str(exc)) from exc


config = _read_config()
prefix = config.prefix
profile = config.profile
host = config.host
tags = config.tags
metadata = config.metadata

labels = spec.common_labels(prefix, metadata)
annotations = spec.metadata_annotations(tags)
selector = spec.service_labels(prefix)


def meta(name: str, namespace: pulumi.Input[str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    """Metadata of one object: its name, the namespace, the stack labels and annotations."""
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=namespace, labels=dict(labels), annotations=dict(annotations)
    )


# --- the namespace and its fences -------------------------------------------------------------

namespace = k8s.core.v1.Namespace(
    "namespace",
    metadata=k8s.meta.v1.ObjectMetaArgs(
        name=config.namespace,
        labels={
            **labels,
            # Pods must meet the "restricted" Pod Security Standard: a shared cluster.
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        },
        annotations=spec.namespace_annotations(tags, metadata),
    ),
)
ns = namespace.metadata.name
child = pulumi.ResourceOptions(depends_on=[namespace])

k8s.core.v1.ResourceQuota(
    "quota",
    metadata=meta("branch-quota", ns),
    spec=k8s.core.v1.ResourceQuotaSpecArgs(
        hard={
            "requests.cpu": profile.quota_requests_cpu,
            "requests.memory": profile.quota_requests_memory,
            "limits.cpu": profile.quota_limits_cpu,
            "limits.memory": profile.quota_limits_memory,
            "pods": str(profile.quota_pods),
            "services": str(profile.quota_services),
            "services.loadbalancers": "0",
            "services.nodeports": "0",
            "persistentvolumeclaims": "0",
        }
    ),
    opts=child,
)

k8s.core.v1.LimitRange(
    "limits",
    metadata=meta("branch-limits", ns),
    spec=k8s.core.v1.LimitRangeSpecArgs(
        limits=[
            k8s.core.v1.LimitRangeItemArgs(
                type="Container",
                default={"cpu": profile.cpu_limit, "memory": profile.memory_limit},
                default_request={"cpu": profile.cpu_request, "memory": profile.memory_request},
                min={"cpu": profile.container_min_cpu, "memory": profile.container_min_memory},
                max={"cpu": profile.container_max_cpu, "memory": profile.container_max_memory},
            )
        ]
    ),
    opts=child,
)

# Default deny: selects every pod, both directions, no rule; the policies below open the rest.
k8s.networking.v1.NetworkPolicy(
    "default-deny",
    metadata=meta("default-deny", ns),
    spec=k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(),
        policy_types=["Ingress", "Egress"],
    ),
    opts=child,
)
k8s.networking.v1.NetworkPolicy(
    "allow-ingress-controller",
    metadata=meta("allow-ingress-controller", ns),
    spec=k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": config.ingress_namespace}
                        )
                    )
                ],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=spec.SERVICE_PORT)
                ],
            )
        ],
    ),
    opts=child,
)
k8s.networking.v1.NetworkPolicy(
    "allow-dns-egress",
    metadata=meta("allow-dns-egress", ns),
    spec=k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(),
        policy_types=["Egress"],
        egress=[
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": "kube-system"}
                        ),
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"k8s-app": "kube-dns"}
                        ),
                    )
                ],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53),
                    k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=53),
                ],
            )
        ],
    ),
    opts=child,
)
# Within the namespace: egress to its own pods, and their ingress from each other (an egress
# allow alone is useless while the receiving pod denies ingress).
k8s.networking.v1.NetworkPolicy(
    "allow-same-namespace",
    metadata=meta("allow-same-namespace", ns),
    spec=k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(),
        policy_types=["Ingress", "Egress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        pod_selector=k8s.meta.v1.LabelSelectorArgs()
                    )
                ]
            )
        ],
        egress=[
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        pod_selector=k8s.meta.v1.LabelSelectorArgs()
                    )
                ]
            )
        ],
    ),
    opts=child,
)

# --- the reference service --------------------------------------------------------------------


def probe(initial_delay_s: int, period_s: int, failures: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=spec.HEALTH_PATH, port="http"),
        initial_delay_seconds=initial_delay_s,
        period_seconds=period_s,
        timeout_seconds=2,
        failure_threshold=failures,
    )


deployment = k8s.apps.v1.Deployment(
    "orders",
    metadata=meta(spec.SERVICE_NAME, ns),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=profile.replicas,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        strategy=k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                max_surge=spec.ROLLING_SURGE, max_unavailable=0
            ),
        ),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels={**labels, **selector}, annotations=dict(annotations)
            ),
            spec=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                security_context=k8s.core.v1.PodSecurityContextArgs(
                    run_as_non_root=True,
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                ),
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name=spec.SERVICE_NAME,
                        image=config.image,
                        ports=[
                            k8s.core.v1.ContainerPortArgs(
                                name="http", container_port=spec.SERVICE_PORT, protocol="TCP"
                            )
                        ],
                        env=[
                            k8s.core.v1.EnvVarArgs(name="PORT", value=str(spec.SERVICE_PORT)),
                            k8s.core.v1.EnvVarArgs(name="BRANCHENV_STACK", value=prefix),
                        ],
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": profile.cpu_request, "memory": profile.memory_request},
                            limits={"cpu": profile.cpu_limit, "memory": profile.memory_limit},
                        ),
                        readiness_probe=probe(initial_delay_s=2, period_s=5, failures=3),
                        liveness_probe=probe(initial_delay_s=10, period_s=10, failures=3),
                        security_context=k8s.core.v1.SecurityContextArgs(
                            allow_privilege_escalation=False,
                            read_only_root_filesystem=True,
                            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                        ),
                        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
                    )
                ],
                volumes=[
                    k8s.core.v1.VolumeArgs(
                        name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()
                    )
                ],
            ),
        ),
    ),
    opts=child,
)

service = k8s.core.v1.Service(
    "orders-service",
    metadata=meta(spec.SERVICE_NAME, ns),
    spec=k8s.core.v1.ServiceSpecArgs(
        type="ClusterIP",
        selector=selector,
        ports=[
            k8s.core.v1.ServicePortArgs(
                name="http", port=spec.SERVICE_PORT, target_port="http", protocol="TCP"
            )
        ],
    ),
    opts=child,
)

k8s.networking.v1.Ingress(
    "orders-ingress",
    metadata=meta(spec.SERVICE_NAME, ns),
    spec=k8s.networking.v1.IngressSpecArgs(
        ingress_class_name=config.ingress_class,
        rules=[
            k8s.networking.v1.IngressRuleArgs(
                host=host,
                http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                    paths=[
                        k8s.networking.v1.HTTPIngressPathArgs(
                            path="/",
                            path_type="Prefix",
                            backend=k8s.networking.v1.IngressBackendArgs(
                                service=k8s.networking.v1.IngressServiceBackendArgs(
                                    name=service.metadata.name,
                                    port=k8s.networking.v1.ServiceBackendPortArgs(
                                        number=spec.SERVICE_PORT
                                    ),
                                )
                            ),
                        )
                    ]
                ),
            )
        ],
    ),
    opts=child,
)

# --- outputs ----------------------------------------------------------------------------------

pulumi.export("namespace", ns)
pulumi.export("host", host)
pulumi.export("service_url", ns.apply(spec.service_url))
pulumi.export("ingress_url", f"http://{host}")
pulumi.export("prefix", prefix)
pulumi.export("profile", profile.name)
