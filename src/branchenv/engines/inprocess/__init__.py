"""The ``inprocess`` engine: a Pulumi program on the SDK's mock runtime, materialized on the
local cloud through boto3. Local target only."""
