"""The local function runner: real handlers, in worker processes, behind real HTTP, with
functions and APIs created in the local cloud through boto3 (as any engine would)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import requests

from branchenv.targets import Target

HANDLER = """
import json, os, boto3

def handler(event, context):
    if event["rawPath"].endswith("/boom"):
        raise RuntimeError("boom")
    if event["rawPath"].endswith("/sleep"):
        import time; time.sleep(5)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=os.environ["BUCKET"], Key="seen", Body=event.get("body") or "")
    print("a print must not corrupt the worker protocol")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "routeKey": event["routeKey"],
            "path": event["rawPath"],
            "method": event["requestContext"]["http"]["method"],
            "params": event.get("pathParameters"),
            "query": event.get("queryStringParameters"),
            "greeting": os.environ["GREETING"],
            "function": context.function_name,
            "version": event["version"],
        }),
    }
"""


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", source)
    return buf.getvalue()


def _deploy(target: Target) -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    iam = target.client("iam")
    role = iam.create_role(
        RoleName=f"fr-role-{suffix}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    bucket = f"fr-bucket-{suffix}"
    target.client("s3").create_bucket(Bucket=bucket)
    lam = target.client("lambda")
    fn = lam.create_function(
        FunctionName=f"fr-fn-{suffix}",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _zip(HANDLER)},
        Timeout=2,
        Environment={"Variables": {"GREETING": "hello", "BUCKET": bucket}},
    )
    apigw = target.client("apigatewayv2")
    api = apigw.create_api(Name=f"fr-api-{suffix}", ProtocolType="HTTP")
    integ = apigw.create_integration(
        ApiId=api["ApiId"],
        IntegrationType="AWS_PROXY",
        IntegrationUri=fn["FunctionArn"],
        PayloadFormatVersion="2.0",
    )
    for key in ("GET /items/{id}", "POST /items", "ANY /{proxy+}"):
        apigw.create_route(
            ApiId=api["ApiId"], RouteKey=key, Target=f"integrations/{integ['IntegrationId']}"
        )
    return fn["FunctionName"], api["ApiId"], bucket


def test_api_routes_reach_the_real_handler(local_cloud: Target) -> None:
    fn, api_id, bucket = _deploy(local_cloud)
    base = f"{local_cloud.functions_url}/api/{api_id}"
    r = requests.get(f"{base}/items/42?x=1", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {
        "routeKey": "GET /items/{id}",
        "path": "/items/42",
        "method": "GET",
        "params": {"id": "42"},
        "query": {"x": "1"},
        "greeting": "hello",
        "function": fn,
        "version": "2.0",
    }
    r = requests.post(f"{base}/items", data=b'{"a": 1}', timeout=30)
    assert r.json()["routeKey"] == "POST /items"
    # The handler really wrote to the local cloud with the function's own environment.
    seen = local_cloud.client("s3").get_object(Bucket=bucket, Key="seen")["Body"].read()
    assert seen == b'{"a": 1}'
    r = requests.delete(f"{base}/anything/else", timeout=30)
    assert r.json()["routeKey"] == "ANY /{proxy+}"
    assert r.json()["params"] == {"proxy": "anything/else"}


def test_function_url_errors_and_timeouts(local_cloud: Target) -> None:
    fn, _api_id, _bucket = _deploy(local_cloud)
    base = f"{local_cloud.functions_url}/fn/{fn}"
    ok = requests.get(f"{base}/hi", timeout=30)
    assert ok.status_code == 200 and ok.json()["routeKey"] == "$default"
    boom = requests.get(f"{base}/boom", timeout=30)
    assert boom.status_code == 500
    assert "boom" not in boom.text  # no handler internals leak to the client
    slow = requests.get(f"{base}/sleep", timeout=30)  # Timeout=2 s, the handler sleeps 5 s
    assert slow.status_code == 503
    assert requests.get(f"{base}/hi", timeout=30).status_code == 200  # a fresh worker serves


def test_unknown_api_and_function(local_cloud: Target) -> None:
    assert requests.get(f"{local_cloud.functions_url}/api/nope/x", timeout=10).status_code == 404
    assert requests.get(f"{local_cloud.functions_url}/fn/nope/x", timeout=10).status_code == 404
    assert requests.get(f"{local_cloud.functions_url}/elsewhere", timeout=10).status_code == 404


def test_code_update_is_picked_up(local_cloud: Target) -> None:
    fn, _api, _bucket = _deploy(local_cloud)
    base = f"{local_cloud.functions_url}/fn/{fn}"
    assert requests.get(f"{base}/x", timeout=30).json()["greeting"] == "hello"
    lam = local_cloud.client("lambda")
    lam.update_function_code(
        FunctionName=fn, ZipFile=_zip(HANDLER.replace('os.environ["GREETING"]', '"v2"'))
    )
    assert requests.get(f"{base}/x", timeout=30).json()["greeting"] == "v2"
    lam.update_function_configuration(
        FunctionName=fn, Environment={"Variables": {"GREETING": "x", "BUCKET": _bucket}}
    )
