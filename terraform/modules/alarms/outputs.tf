output "topic_arn" {
  description = "ARN of the alarm SNS topic."
  value       = aws_sns_topic.alarms.arn
}

output "coordinator_failed_rule" {
  description = "EventBridge rule that reports a failed coordinator task."
  value       = aws_cloudwatch_event_rule.coordinator_failed.name
}
