"""Refresh asks each materializer whether its resource still exists. Only "not found" may
count as gone: a throttled or refused answer says nothing about the resource, and dropping a
live resource from the state on it would leak it (issue 11 item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from branchenv.engines.inprocess.materializers import REGISTRY, Context, Materializer
from branchenv.errors import BranchenvError, TransientError
from branchenv.targets import Target

TARGET = Target("local", "us-east-1", endpoint_url="http://127.0.0.1:9")
OUTPUTS = {
    "apiId": "api1",
    "bucket": "b",
    "name": "n",
    "arn": "arn:aws:x:us-east-1:1:y",
    "rule": "r",
    "targetId": "t",
}


class AnsweringClient:
    """A client whose every call fails with one AWS error (the target's answer under test)."""

    def __init__(self, code: str, status: int) -> None:
        self.code, self.status = code, status

    def __getattr__(self, operation: str) -> Any:
        def call(**_: Any) -> Any:
            raise ClientError(
                {
                    "Error": {"Code": self.code, "Message": f"{self.code} for {operation}"},
                    "ResponseMetadata": {"HTTPStatusCode": self.status},
                },
                operation,
            )

        return call


class AnsweringContext(Context):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(TARGET, "us-east-1")
        self.answering = AnsweringClient(code, status)

    def client(self, service: str) -> Any:
        return self.answering


def checking() -> list[tuple[str, Materializer]]:
    """Every materializer that really checks (the others assume the resource exists)."""
    return sorted(
        (token, m) for token, m in REGISTRY.items() if type(m).exists is not Materializer.exists
    )


def test_some_materializers_check_existence() -> None:
    assert len(checking()) >= 6


@pytest.mark.parametrize(("token", "materializer"), checking())
@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("Throttling", 400), ("ServiceUnavailable", 503)],
)
def test_a_throttled_answer_is_transient_never_gone(
    token: str, materializer: Materializer, code: str, status: int
) -> None:
    with pytest.raises(TransientError):
        materializer.exists(AnsweringContext(code, status), id="x", outputs=dict(OUTPUTS))


@pytest.mark.parametrize(("token", "materializer"), checking())
def test_a_refused_answer_is_an_error_never_gone(token: str, materializer: Materializer) -> None:
    with pytest.raises((BranchenvError, ClientError)):
        materializer.exists(
            AnsweringContext("AccessDeniedException", 403), id="x", outputs=dict(OUTPUTS)
        )


@pytest.mark.parametrize(("token", "materializer"), checking())
def test_not_found_is_gone(token: str, materializer: Materializer) -> None:
    # Every service's own not-found answer, as the local cloud and AWS give it (404s, and the
    # 400s some services use for a missing resource).
    answers = {
        "aws:iam/role:Role": ("NoSuchEntity", 404),
        "aws:lambda/function:Function": ("ResourceNotFoundException", 404),
        "aws:dynamodb/table:Table": ("ResourceNotFoundException", 400),
        "aws:sqs/queue:Queue": ("AWS.SimpleQueueService.NonExistentQueue", 400),
        "aws:s3/bucket:Bucket": ("404", 404),
    }
    code, status = answers.get(token, ("NotFoundException", 404))
    assert (
        materializer.exists(AnsweringContext(code, status), id="x", outputs=dict(OUTPUTS)) is False
    )
