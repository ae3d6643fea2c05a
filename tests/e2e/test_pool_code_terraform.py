"""A claimant whose function code differs from the pool's, on the real terraform engine (issue
17: the typical branch changes its code, and its warm claim must apply that on top).

A module of a bucket and a function behind an HTTP API, in a pool of one filled with code "v1".
The branch's module differs only in the function's package ("v2"): `up --pool` claims the pool
stack and updates it, and the endpoint then serves v2. Its release (`down`) keeps the stack
(the resource graph is the pool's), wipes the bucket the claimant wrote to, and `pool status`
lists the stack free again. Everything is read over HTTP: the endpoint through the local
function runner, the bucket through the local cloud.
"""

from __future__ import annotations

import io
import json
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.e2e.test_pool_terraform import TIMEOUT, _json
from tests.e2e.test_terraform import terraform_project
from tests.tfsupport import terraform_bin, terraform_mirror

__all__ = ["terraform_bin", "terraform_mirror"]  # fixtures, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

MODULE = """
variable "prefix" {
  type = string
}

variable "local_functions_url" {
  type    = string
  default = null
}

resource "aws_s3_bucket" "data" {
  bucket        = "${var.prefix}-data"
  force_destroy = true
}

resource "aws_iam_role" "fn" {
  name = "${var.prefix}-fn"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_lambda_function" "fn" {
  function_name    = "${var.prefix}-fn"
  runtime          = "python3.12"
  handler          = "app.handler"
  filename         = "${path.module}/app.zip"
  source_code_hash = filebase64sha256("${path.module}/app.zip")
  role             = aws_iam_role.fn.arn
}

resource "aws_apigatewayv2_api" "api" {
  name          = "${var.prefix}-api"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "fn" {
  api_id                 = aws_apigatewayv2_api.api.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.fn.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "fn" {
  for_each  = toset(["GET /health", "GET /version"]) # /health: what readiness asks
  api_id    = aws_apigatewayv2_api.api.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.fn.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.api.id
  name        = "$default"
  auto_deploy = true
}

resource "aws_lambda_permission" "invoke" {
  statement_id  = "allow-apigateway-invoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.api.execution_arn}/*/*"
}

output "endpoint" {
  value = var.local_functions_url != null ? "${trimsuffix(var.local_functions_url, "/")}/api/${aws_apigatewayv2_api.api.id}" : aws_apigatewayv2_api.api.api_endpoint
}

output "bucket" {
  value = aws_s3_bucket.data.bucket
}
"""


def _package(version: str) -> bytes:
    """The function's zip: the same bytes for the same version (fixed time and mode)."""
    code = (
        "def handler(event, context):\n"
        f"    return {{'statusCode': 200, 'body': {json.dumps(version)}}}\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("app.py", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, code)
    return buffer.getvalue()


def _served(endpoint: str) -> str:
    with urllib.request.urlopen(f"{endpoint}/version", timeout=30) as resp:
        return str(resp.read().decode())


def test_a_claimant_with_changed_code_gets_the_pool_stack_updated_then_back_wiped(
    tmp_path: Path, terraform_bin: str, terraform_mirror: Path
) -> None:
    root = tmp_path / "tfcode"
    project = terraform_project(
        root, terraform_mirror, program="module", extra='pool_size = 1\npool_refill = "off"\n'
    )
    module = root / "module"
    module.mkdir()
    (module / "main.tf").write_text(MODULE)
    (module / "app.zip").write_bytes(_package("v1"))
    branch = f"feature/code-{uuid.uuid4().hex[:6]}"
    try:
        fill = _json(project, "pool", "fill")
        [pool_stack] = fill["created"]
        assert fill["engine"] == "terraform"

        (module / "app.zip").write_bytes(_package("v2"))  # the branch's code
        up = _json(project, "up", "--pool", "--branch", branch)
        assert up["stack"] == pool_stack  # claimed, and the new code applied on top
        out = up["outputs"]
        assert _served(out["endpoint"]) == "v2"
        s3 = project.target().client("s3")
        s3.put_object(Bucket=out["bucket"], Key="claimant.txt", Body=b"the claimant was here")
        [member] = _json(project, "pool", "status")["stacks"]
        assert member["stack"] == pool_stack and member["claimed_by"] == branch

        down = _json(project, "down", "--branch", branch)
        assert down["stack"] == pool_stack
        assert down["released"] is True and down["removed"] is False, down
        assert s3.list_objects_v2(Bucket=out["bucket"])["KeyCount"] == 0
        assert not s3.list_object_versions(Bucket=out["bucket"]).get("Versions")
        [member] = _json(project, "pool", "status")["stacks"]
        assert member["stack"] == pool_stack
        assert member["state"] == "free" and member["claimed_by"] is None
        print(
            f"\nterraform pool, code changed: fill {fill['duration_s']:.1f} s, claim + update "
            f"{up['duration_s']:.1f} s, release {down['duration_s']:.1f} s"
        )
    finally:
        project.run("down", "--branch", branch, timeout=TIMEOUT)
        project.run("pool", "drain", "--yes", timeout=TIMEOUT)
        project.run("cloud", "stop")
