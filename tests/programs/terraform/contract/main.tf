# The terraform engine's contract program: fast resources only (no SQS queue, whose creation
# the aws provider follows with a fixed 25 s wait), a declared prefix and profile, the module's
# own default tags (merged with branchenv's), a secret output.

variable "prefix" {
  type = string
}

variable "profile" {
  type    = string
  default = "ephemeral"
}

variable "marker" {
  description = "Changed by tests to force an in-place update."
  type        = string
  default     = "one"
}

provider "aws" {
  default_tags {
    tags = { "contract:owner" = "tests" }
  }
}

resource "aws_s3_bucket" "data" {
  bucket        = "${var.prefix}-data"
  force_destroy = true
  tags          = { marker = var.marker }
}

resource "aws_dynamodb_table" "items" {
  name         = "${var.prefix}-items"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"
  attribute {
    name = "id"
    type = "S"
  }
}

output "bucket_name" {
  value = aws_s3_bucket.data.bucket
}

output "table_name" {
  value = aws_dynamodb_table.items.name
}

output "profile" {
  value = var.profile
}

output "token" {
  value     = sha256("${var.prefix}-token")
  sensitive = true
}

output "endpoint" {
  value = "https://${aws_s3_bucket.data.bucket_regional_domain_name}"
}
