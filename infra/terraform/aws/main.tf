# branchenv's production-like AWS stack as a Terraform module: the same resources, physical names
# and outputs as the Pulumi program in infra/aws, so the suite in infra/aws/tests runs against
# either unchanged (`tests` and `service` here are links to infra/aws).
#
# Nothing in this module knows about the local cloud or branchenv's tags: branchenv's terraform
# engine injects the provider settings (endpoints, credentials, default tags) as an override file
# in the stack's own work dir, and passes `prefix`, `profile` and `local_functions_url` because
# the module declares them.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}

provider "aws" {}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # Sizes per profile; must match PROFILES in infra/aws/orders_stack_spec.py (a unit test
  # compares the two).
  profiles = {
    ephemeral = {
      log_retention_days         = 3
      lambda_memory_mb           = 256
      lambda_timeout_s           = 10
      reserved_concurrency       = -1 # none reserved
      queue_retention_s          = 86400
      dlq_retention_s            = 345600
      queue_visibility_timeout_s = 30
    }
    prodlike = {
      log_retention_days         = 30
      lambda_memory_mb           = 1024
      lambda_timeout_s           = 15
      reserved_concurrency       = 20
      queue_retention_s          = 345600
      dlq_retention_s            = 1209600
      queue_visibility_timeout_s = 90
    }
  }
  profile = local.profiles[var.profile]

  # Physical names: orders_stack_spec.physical_names.
  names = {
    table       = "${var.prefix}-orders"
    queue       = "${var.prefix}-orders"
    dlq         = "${var.prefix}-orders-dlq"
    role        = "${var.prefix}-handler-role"
    role_policy = "${var.prefix}-handler-policy"
    function    = "${var.prefix}-orders-api"
    log_group   = "/aws/lambda/${var.prefix}-orders-api"
    api         = "${var.prefix}-orders-api"
  }

  # S3 names are one namespace across every account: the bucket's carries the account id
  # (orders_stack_spec.bucket_name).
  bucket_name = "${var.prefix}-artifacts-${data.aws_caller_identity.current.account_id}"

  max_receive_count = 3 # orders_stack_spec.MAX_RECEIVE_COUNT
  service_timeout_s = 2 # orders_stack_spec.SERVICE_TIMEOUT_S
}

# --- data ------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "orders" {
  name         = local.names.table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  server_side_encryption {
    enabled = true
  }
}

resource "aws_sqs_queue" "dlq" {
  name                      = local.names.dlq
  message_retention_seconds = local.profile.dlq_retention_s
  sqs_managed_sse_enabled   = true
}

# The aws provider follows every CreateQueue, and every change of a queue attribute, with a
# fixed 25 s wait (six equal reads five seconds apart). SQS (and the local cloud) reject a
# RedrivePolicy naming a queue that does not exist yet, so this queue is created after the DLQ:
# creating both at once with a DLQ ARN built from names would race the DLQ's CreateQueue, and
# a separate aws_sqs_queue_redrive_policy costs the same 25 s again, at create and at destroy.
resource "aws_sqs_queue" "orders" {
  name                       = local.names.queue
  message_retention_seconds  = local.profile.queue_retention_s
  visibility_timeout_seconds = local.profile.queue_visibility_timeout_s
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = local.max_receive_count
  })
}

resource "aws_s3_bucket" "artifacts" {
  bucket        = local.bucket_name
  force_destroy = true # branch stacks are torn down with whatever they hold
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# --- the function and its permissions ---------------------------------------------------------

resource "aws_cloudwatch_log_group" "orders_api" {
  name              = local.names.log_group
  retention_in_days = local.profile.log_retention_days
}

resource "aws_iam_role" "handler" {
  name = local.names.role
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# orders_stack_spec.handler_policy: named actions on this stack's resources only.
resource "aws_iam_role_policy" "handler" {
  name = local.names.role_policy
  role = aws_iam_role.handler.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "OrdersTable"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DescribeTable"]
        Resource = [aws_dynamodb_table.orders.arn]
      },
      {
        Sid      = "OrdersQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [aws_sqs_queue.orders.arn]
      },
      {
        Sid      = "ArtifactsObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = ["${aws_s3_bucket.artifacts.arn}/*"]
      },
      {
        # Streams are sub-resources of the group: "<group arn>:log-stream:<name>".
        Sid      = "FunctionLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [aws_cloudwatch_log_group.orders_api.arn, "${aws_cloudwatch_log_group.orders_api.arn}:log-stream:*"]
      },
    ]
  })
}

resource "aws_lambda_function" "orders_api" {
  function_name                  = local.names.function
  runtime                        = "python3.12"
  handler                        = "orders.handler"
  filename                       = terraform_data.service_zip.output
  source_code_hash               = local.service_hash
  role                           = aws_iam_role.handler.arn
  memory_size                    = local.profile.lambda_memory_mb
  timeout                        = local.profile.lambda_timeout_s
  reserved_concurrent_executions = local.profile.reserved_concurrency

  environment {
    variables = {
      TABLE_NAME        = aws_dynamodb_table.orders.name
      QUEUE_URL         = aws_sqs_queue.orders.url
      BUCKET_NAME       = aws_s3_bucket.artifacts.bucket
      SERVICE_TIMEOUT_S = tostring(local.service_timeout_s)
    }
  }

  depends_on = [aws_cloudwatch_log_group.orders_api, aws_iam_role_policy.handler]
}

# --- the HTTP API ----------------------------------------------------------------------------

resource "aws_apigatewayv2_api" "orders" {
  name          = local.names.api
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "orders" {
  api_id                 = aws_apigatewayv2_api.orders.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.orders_api.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "orders" {
  for_each = {
    create-order = "POST /orders"
    get-order    = "GET /orders/{id}"
    health       = "GET /health"
  }
  api_id    = aws_apigatewayv2_api.orders.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.orders.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.orders.id
  name        = "$default"
  auto_deploy = true
}

resource "aws_lambda_permission" "apigateway_invoke" {
  statement_id  = "allow-apigateway-invoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.orders_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.orders.execution_arn}/*/*"
}
