# A user's module that knows nothing of branchenv: no provider block, no variables, no tags,
# no fixed names. branchenv must still point it at the local cloud and tag what it creates.

resource "aws_s3_bucket" "files" {
  force_destroy = true
}

resource "aws_cloudwatch_log_group" "app" {
  retention_in_days = 1
}

output "bucket" {
  value = aws_s3_bucket.files.bucket
}
