# The same output names as the Pulumi program (infra/aws/__main__.py): the suite reads these.

output "endpoint" {
  value = var.local_functions_url != null ? "${trimsuffix(var.local_functions_url, "/")}/api/${aws_apigatewayv2_api.orders.id}" : aws_apigatewayv2_api.orders.api_endpoint
}
output "api_id" { value = aws_apigatewayv2_api.orders.id }
output "function_name" { value = aws_lambda_function.orders_api.function_name }
output "table_name" { value = aws_dynamodb_table.orders.name }
output "queue_url" { value = aws_sqs_queue.orders.url }
output "queue_name" { value = aws_sqs_queue.orders.name }
output "queue_arn" { value = aws_sqs_queue.orders.arn }
output "dlq_url" { value = aws_sqs_queue.dlq.url }
output "dlq_name" { value = aws_sqs_queue.dlq.name }
output "dlq_arn" { value = aws_sqs_queue.dlq.arn }
output "bucket_name" { value = aws_s3_bucket.artifacts.bucket }
output "role_name" { value = aws_iam_role.handler.name }
output "role_arn" { value = aws_iam_role.handler.arn }
output "log_group_name" { value = aws_cloudwatch_log_group.orders_api.name }
output "region" { value = data.aws_region.current.name }
output "prefix" { value = var.prefix }
output "profile" { value = var.profile }
output "max_receive_count" { value = local.max_receive_count }
