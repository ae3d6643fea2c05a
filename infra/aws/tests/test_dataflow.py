"""Data flow: an order reaches DynamoDB and SQS; a poison message ends in the dead-letter queue."""

from __future__ import annotations

import json
import uuid
from typing import Any


def _receive_matching(sqs: Any, queue_url: str, match: Any, *, rounds: int = 5) -> dict[str, Any]:
    for _ in range(rounds):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            if match(message):
                return dict(message)
    raise AssertionError(f"no matching message on {queue_url} after {rounds} receives")


def test_order_lands_in_table_and_queue(
    new_order: Any, branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    order = new_order(customer="grace", items=[{"sku": "lamp", "qty": 3}])
    item = branchenv_boto3_session.client("dynamodb").get_item(
        TableName=branchenv_outputs["table_name"],
        Key={"id": {"S": order["id"]}},
        ConsistentRead=True,
    )["Item"]
    assert item["customer"]["S"] == "grace"
    assert item["items"]["L"][0]["M"]["qty"]["N"] == "3"
    assert int(item["expires_at"]["N"]) == order["expires_at"]

    sqs = branchenv_boto3_session.client("sqs")
    message = _receive_matching(
        sqs,
        branchenv_outputs["queue_url"],
        lambda m: json.loads(m["Body"]).get("order_id") == order["id"],
    )
    assert json.loads(message["Body"]) == {"type": "order.created", "order_id": order["id"]}
    sqs.delete_message(
        QueueUrl=branchenv_outputs["queue_url"], ReceiptHandle=message["ReceiptHandle"]
    )


def test_poison_message_goes_to_dlq_after_max_receives(
    branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    sqs = branchenv_boto3_session.client("sqs")
    queue, dlq = branchenv_outputs["queue_url"], branchenv_outputs["dlq_url"]
    max_receives = int(branchenv_outputs["max_receive_count"])
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    assert policy["deadLetterTargetArn"] == branchenv_outputs["dlq_arn"]
    assert int(policy["maxReceiveCount"]) == max_receives

    poison = json.dumps({"type": "poison", "id": uuid.uuid4().hex})
    sqs.send_message(QueueUrl=queue, MessageBody=poison)
    receives = 0
    for _ in range(max_receives + 3):
        got = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        ).get("Messages", [])
        if any(m["Body"] == poison for m in got):
            receives += 1  # received, never deleted: the consumer "failed"
        elif receives:
            break
    assert receives == max_receives, f"received {receives} times before redrive"
    moved = _receive_matching(sqs, dlq, lambda m: m["Body"] == poison)
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=moved["ReceiptHandle"])
