output "topic_arn" {
  description = "ARN of the alarm SNS topic."
  value       = aws_sns_topic.alarms.arn
}

output "coordinator_failed_rule" {
  description = "EventBridge rule that reports a failed coordinator task."
  value       = aws_cloudwatch_event_rule.coordinator_failed.name
}

output "exporter_alarm_names" {
  description = "Names of the alarms on the exporter's metrics (empty without exporter_alarms_enabled)."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.exporter_state : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.exporter_heartbeat : a.alarm_name],
  )
}
