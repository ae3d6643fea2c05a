"""The SDK preload of the mock runtime: which module each type token's class lives in, and that
a program run never starts while a preload still imports (a provider SDK's lazily loaded
modules are not safe to load from two threads at once on Python 3.11)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from branchenv import mockruntime


def _preview(prog: Path) -> mockruntime.ProgramRun:
    """A preview of the program in ``prog`` on the mock runtime, every resource given an id."""
    return mockruntime.run_program(
        program_dir=prog,
        project="p",
        stack="s",
        config={},
        new_resource=lambda reg: ("id", {}),
        preview=True,
    )


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("aws:s3/bucket:Bucket", ("pulumi_aws.s3", "Bucket")),
        ("aws:s3/bucketV2:BucketV2", ("pulumi_aws.s3", "BucketV2")),
        ("aws:lambda/function:Function", ("pulumi_aws.lambda_", "Function")),
        ("aws:apigatewayv2/api:Api", ("pulumi_aws.apigatewayv2", "Api")),
        ("aws:index/provider:Provider", ("pulumi_aws", "Provider")),
        ("kubernetes:core/v1:Namespace", ("pulumi_kubernetes.core.v1", "Namespace")),
        ("azure-native:storage:StorageAccount", ("pulumi_azure_native.storage", "StorageAccount")),
    ],
)
def test_a_type_token_names_its_class_in_the_python_sdk(
    token: str, expected: tuple[str, str]
) -> None:
    assert mockruntime.sdk_modules([token]) == [expected]


@pytest.mark.parametrize("token", ["pulumi:providers:aws", "pulumi:pulumi:Stack", "nonsense", ""])
def test_tokens_of_no_sdk_class_are_left_out(token: str) -> None:
    assert mockruntime.sdk_modules([token]) == []


def test_a_run_waits_for_the_preload_still_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"

    def slow_import() -> None:
        time.sleep(0.5)  # a long import, still going when the run is asked for
        marker.write_text("done")

    monkeypatch.setattr(mockruntime, "_import_sdk", slow_import)
    prog = tmp_path / "prog"
    prog.mkdir()
    # The program reads what the preload leaves: it fails when it runs before the preload ends.
    (prog / "__main__.py").write_text(
        f"import pulumi\npulumi.export('seen', open({str(marker)!r}).read())\n"
    )
    mockruntime.preload(["aws:sqs/queue:Queue"])
    run = _preview(prog)
    assert run.outputs["seen"] == "done"


def test_a_preload_of_an_sdk_not_installed_leaves_the_error_to_the_run(tmp_path: Path) -> None:
    prog = tmp_path / "prog"
    prog.mkdir()
    (prog / "__main__.py").write_text("import pulumi\npulumi.export('ok', 1)\n")
    mockruntime.preload(["nosuchcloud:things/thing:Thing"]).join(timeout=60)
    run = _preview(prog)
    assert run.outputs == {"ok": 1}
