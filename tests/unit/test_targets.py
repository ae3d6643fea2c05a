"""Targets: a local target only ever reaches the loopback local cloud."""

from __future__ import annotations

import json

import pytest

from branchenv.engines.pulumi_program import provider_config
from branchenv.errors import LocalCloudError, SafetyRefusal, UsageError
from branchenv.targets import Target, check_target_name


def test_local_target_without_endpoint_never_falls_back_to_aws() -> None:
    with pytest.raises(LocalCloudError, match="branchenv cloud start"):
        Target("local", "us-east-1").client("s3")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:4566", "https://s3.amazonaws.com", "http://example.com"]
)
def test_local_target_refuses_a_non_loopback_endpoint(url: str) -> None:
    with pytest.raises(SafetyRefusal, match="not on loopback"):
        Target("local", "us-east-1", endpoint_url=url).client("s3")


def test_local_target_client_uses_the_loopback_endpoint() -> None:
    client = Target("local", "eu-west-1", endpoint_url="http://127.0.0.1:5999").client("sqs")
    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.region_name == "eu-west-1"


def test_pulumi_provider_config_points_every_service_at_the_local_cloud() -> None:
    cfg = provider_config(
        Target(
            "local",
            "us-east-1",
            endpoint_url="http://127.0.0.1:1",
            functions_url="http://127.0.0.1:2",
        )
    )
    endpoints = json.loads(cfg["aws:endpoints"])[0]
    assert set(endpoints.values()) == {"http://127.0.0.1:1"}
    assert {"s3", "sqs", "dynamodb", "lambda", "iam", "apigatewayv2"} <= set(endpoints)
    assert cfg["aws:s3UsePathStyle"] == "true" and cfg["aws:skipCredentialsValidation"] == "true"
    assert cfg["branchenv:localFunctionsUrl"] == "http://127.0.0.1:2"
    assert provider_config(Target("aws", "us-west-2")) == {"aws:region": "us-west-2"}


def test_target_names() -> None:
    assert check_target_name("aws") == "aws"
    with pytest.raises(UsageError, match="Valid targets: local, aws"):
        check_target_name("gcp")
