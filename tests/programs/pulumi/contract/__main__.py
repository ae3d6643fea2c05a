"""The Pulumi-program engines' contract program: the same resources and outputs as the
terraform contract module (tests/programs/terraform/contract): a bucket and a table named from
the stack's prefix, the default provider's default tags (branchenv's), a secret output."""

import hashlib

import pulumi
import pulumi_aws as aws

cfg = pulumi.Config("branchenv")
prefix = cfg.require("prefix")
profile = cfg.get("profile") or "ephemeral"
marker = cfg.get("marker") or "one"

bucket = aws.s3.Bucket("data", bucket=f"{prefix}-data", force_destroy=True, tags={"marker": marker})
table = aws.dynamodb.Table(
    "items",
    name=f"{prefix}-items",
    billing_mode="PAY_PER_REQUEST",
    hash_key="id",
    attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
)

pulumi.export("bucket_name", bucket.bucket)
pulumi.export("table_name", table.name)
pulumi.export("profile", profile)
pulumi.export("token", pulumi.Output.secret(hashlib.sha256(f"{prefix}-token".encode()).hexdigest()))
pulumi.export("endpoint", bucket.bucket.apply(lambda b: f"https://{b}.s3.amazonaws.com"))
