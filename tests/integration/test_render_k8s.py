"""`branchenv.render.render` on the real Kubernetes program (infra/k8s): manifests written for
awkward branch names pass the Kubernetes 1.30 schema and the API server's naming rules; the
validation catches what is wrong; bad config writes nothing."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from branchenv.errors import ConfigError, UsageError
from branchenv.k8s_names import dns1123_label_problem
from branchenv.naming import names_for
from branchenv.render import DEFAULT_K8S_VERSION, render, validate_manifest

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "k8s"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
AWKWARD = [
    "feature/ABC-123_fix.v2",
    "ünïcødé/ブランチ-🚀",
    "x/" + "long-Branch_name." * 18,  # 300+ characters
    "Main",
]


@pytest.mark.parametrize("branch", AWKWARD, ids=["slashes", "unicode", "300-chars", "Main"])
def test_awkward_branches_render_valid_manifests(branch: str, tmp_path: Path) -> None:
    assert len(AWKWARD[2]) >= 300
    result = render(PROGRAM, branch=branch, out_dir=tmp_path / "out", now=NOW)
    assert result.errors == (), [str(e) for e in result.errors]
    assert result.k8s_version == DEFAULT_K8S_VERSION
    assert len(result.files) == 10
    assert sorted(p.name for p in (tmp_path / "out").glob("*.yaml")) == sorted(
        p.name for p in result.files
    )
    prefix = names_for(branch).prefix
    assert dns1123_label_problem(prefix) is None
    assert result.outputs["namespace"] == prefix
    kinds = []
    for path in result.files:
        (manifest,) = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        # the file itself, read back, passes the official schema and the naming rules
        kubernetes_validate.validate(manifest, DEFAULT_K8S_VERSION, strict=True)
        assert validate_manifest(manifest, DEFAULT_K8S_VERSION) == []
        assert manifest["metadata"].get("namespace", prefix) == prefix
        kinds.append(manifest["kind"])
    assert kinds[0] == "Namespace"
    namespace = yaml.safe_load(result.files[0].read_text(encoding="utf-8"))
    shown = namespace["metadata"]["annotations"]["branchenv.dev/branch"]
    # tag values are cut at 256 encoded characters (branchenv.metadata): the head and a mark
    assert shown == branch or (shown.endswith("…") and branch.startswith(shown[:-1]))
    assert namespace["metadata"]["annotations"]["janitor/expires"] == "2030-01-02T00:00:00Z"


def test_validation_reports_schema_and_name_problems(tmp_path: Path) -> None:
    program = tmp_path / "bad"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: bad-k8s\nruntime: python\n")
    (program / "__main__.py").write_text(
        textwrap.dedent(
            """
            import pulumi_kubernetes as k8s
            k8s.core.v1.ConfigMap(
                "cm",
                metadata={"name": "Bad_Name", "labels": {"team": "a/b"}},
                data={"k": "v"},
            )
            k8s.core.v1.Service(
                "svc", metadata={"name": "0svc"}, spec={"ports": [{"port": "not-a-number"}]}
            )
            k8s.networking.v1.Ingress(
                "ing", metadata={"name": "ing"}, spec={"rules": [{"host": "Bad_Host.example"}]}
            )
            """
        )
    )
    result = render(program, branch="main", out_dir=tmp_path / "out", now=NOW)
    assert len(result.files) == 3
    text = "\n".join(str(e) for e in result.errors)
    assert "ConfigMap/Bad_Name: metadata.name" in text
    assert "metadata.labels.team" in text
    assert "Service/0svc: metadata.name" in text and "must start with a letter" in text
    assert "spec.ports.0.port: schema:" in text
    assert "Ingress/ing: spec.rules.0.host" in text
    assert not result.ok


def test_bad_config_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"branchenv:cpuLimit '12 cores'.*nothing was rendered"):
        render(
            PROGRAM,
            branch="feature/x",
            out_dir=out,
            config={"branchenv:cpuLimit": "12 cores"},
        )
    assert not out.exists()
    with pytest.raises(ConfigError, match="branchenv:baseDomain"):
        render(PROGRAM, branch="feature/x", out_dir=out, config={"branchenv:baseDomain": "x_y"})
    assert not out.exists()


def test_non_kubernetes_types_are_refused_before_writing(tmp_path: Path) -> None:
    program = tmp_path / "mixed"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: mixed\nruntime: python\n")
    (program / "__main__.py").write_text(
        "import pulumi_kubernetes as k8s\n"
        'k8s.core.v1.ConfigMapPatch("p", metadata={"name": "x"}, data={"a": "b"})\n'
    )
    with pytest.raises(UsageError, match="ConfigMapPatch"):
        render(program, branch="main", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rerender_replaces_its_own_earlier_manifests_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = render(PROGRAM, branch="feature/x", out_dir=out, profile="ephemeral")
    (out / "README.md").write_text("mine\n")
    stale = out / "99-configmap-stale.yaml"  # as if an earlier render had written it
    stale.write_text("stale\n")
    marker = out / ".branchenv-rendered"
    marker.write_text(marker.read_text() + stale.name + "\n")
    result = render(PROGRAM, branch="feature/x", out_dir=out, profile="prodlike")
    assert not stale.exists()
    assert (out / "README.md").read_text() == "mine\n"
    assert result.outputs["profile"] == "prodlike" and result.errors == ()
    assert {o.file.name for o in result.objects} == {o.file.name for o in first.objects}


def test_manifests_branchenv_did_not_write_are_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    hand_written = out / "10-deployment-api.yaml"
    hand_written.write_text("kind: Deployment\n")
    with pytest.raises(UsageError, match="did not render"):
        render(PROGRAM, branch="feature/x", out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["10-deployment-api.yaml"]
    assert hand_written.read_text() == "kind: Deployment\n"


@pytest.mark.parametrize("version", ["1.99", "latest", "1"])
def test_unknown_k8s_version_is_a_usage_error(version: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--k8s-version"):
        render(PROGRAM, branch="main", out_dir=tmp_path / "out", k8s_version=version)
    assert not (tmp_path / "out").exists()
