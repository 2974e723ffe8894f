# Autoscaling of the worker service on the accounts that have work (issue 9, item 5).
#
# The policy, mirrored as pure functions (and unit-tested) in worker/src/autoscaling.rs and
# simulated in worker/benches/skewed_night.rs:
#
#   desired tasks = ceil(AccountsWithWork / worker_concurrency), from 0 to max_tasks;
#   out at once, in only after a cooldown; busy tasks are never stopped by a scale-in.
#
# Why not the queues' message count: an account's messages are one SQS FIFO group, so an
# account keeps at most one worker slot busy however many messages it has (a 2,400-item
# account needs one task, not 2,400 / N), and a queue-length scaler scales in while the last
# messages are in flight, stopping the tasks that hold them.
#
# The metric: `coordinator start --wait` (the nightly scheduled task) prints
# Accessflow/AccountsWithWork{Deployment=var.name_prefix} in CloudWatch's embedded metric
# format on stdout every 30 s (so every 1-minute period has a datapoint) and at once when
# it reaches 0; CloudWatch Logs extracts it from the task's awslogs stream. No API call.
#
# Why step scaling with ExactCapacity, not target tracking: target tracking cannot scale
# out from 0 tasks (it scales the current capacity by a ratio) and aims at a ratio, not an
# exact count. Here one alarm is in ALARM whenever the metric has a value (threshold 0,
# >=), and CloudWatch invokes Auto Scaling actions again every period an alarm stays in
# ALARM (unlike other alarm actions), so the policy sets the desired count from the metric
# every minute. Its step adjustments (one per task count, generated below) are
# `worker/src/autoscaling.rs::step_intervals`:
#   AccountsWithWork in [0, 0.5)                 -> 0 tasks
#   AccountsWithWork in [(k-1)c + 0.5, kc + 0.5) -> k tasks   (k = 1 .. max_tasks - 1)
#   AccountsWithWork >= (max_tasks-1)c + 0.5     -> max_tasks
# (the metric is a whole number; half-integer bounds make each interval exact).
#
# Out fast, in slowly: Application Auto Scaling applies a larger desired count at once, and
# blocks a smaller one until the policy's cooldown has passed since its last scaling
# activity. With task scale-in protection (the worker protects its task through the ECS
# agent while it holds a message: worker/src/scale_in_protection.rs), a lower desired count
# stops only idle tasks, and a busy task once it goes idle; so the cooldown guards against
# flapping, not against killed work (the task role's OwnTaskProtection statement in iam.tf
# lets the agent protect the task), and stays short (120 s: the simulation's task-hours
# were 1.32x the busy hours with 300 s, the Application Auto Scaling default, and 1.21x with
# 120 s, with 50 tasks).
#
# When the metric stops (the coordinator died, or the night is over and nothing runs): the
# main alarm has no data and does nothing; a second alarm fills the missing minutes with 0
# and, after `autoscaling_idle_minutes` of 0 or nothing, sets the desired count to 0, so a
# night whose coordinator died does not leave tasks running all day.

variable "autoscaling_metric_namespace" {
  description = "CloudWatch namespace of the AccountsWithWork metric (coordinator/src/metrics.rs)."
  type        = string
  default     = "Accessflow"
}

variable "autoscaling_scale_in_cooldown_secs" {
  description = "Seconds after a scaling activity before the desired count may go down again (up is never held back)."
  type        = number
  default     = 120

  validation {
    condition     = var.autoscaling_scale_in_cooldown_secs >= 60
    error_message = "The scale-in cooldown must be at least one metric period (60 s)."
  }
}

variable "autoscaling_idle_minutes" {
  description = "Minutes of AccountsWithWork at 0, or missing, after which the service is set to 0 tasks."
  type        = number
  default     = 30

  validation {
    condition     = var.autoscaling_idle_minutes >= 5 && var.autoscaling_idle_minutes <= 1440
    error_message = "Between 5 and 1440 minutes (one alarm evaluation period per minute)."
  }
}

variable "autoscaling_step_adjustments_quota" {
  description = "Application Auto Scaling's 'step adjustments per step scaling policy' quota (20 by default, adjustable): the policy needs max_tasks + 1."
  type        = number
  default     = 20
}

locals {
  autoscaling_resource_id = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  autoscaling_dimensions  = { Deployment = var.name_prefix }
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = local.autoscaling_resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 0
  max_capacity       = var.max_tasks
}

# desired = ceil(AccountsWithWork / worker_concurrency), applied every minute.
resource "aws_appautoscaling_policy" "accounts_with_work" {
  name               = "${var.name_prefix}-worker-accounts-with-work"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = var.autoscaling_scale_in_cooldown_secs
    metric_aggregation_type = "Maximum"

    dynamic "step_adjustment" {
      for_each = range(0, var.max_tasks + 1)
      content {
        metric_interval_lower_bound = step_adjustment.value == 0 ? 0 : (step_adjustment.value - 1) * var.worker_concurrency + 0.5
        metric_interval_upper_bound = step_adjustment.value == var.max_tasks ? null : step_adjustment.value * var.worker_concurrency + 0.5
        scaling_adjustment          = step_adjustment.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.max_tasks + 1 <= var.autoscaling_step_adjustments_quota
      error_message = "The policy needs max_tasks + 1 step adjustments: raise the 'Step adjustments per step scaling policy' quota and autoscaling_step_adjustments_quota, or lower max_tasks."
    }
    precondition {
      condition     = var.worker_concurrency >= 1
      error_message = "worker_concurrency must be at least 1."
    }
  }
}

# In ALARM whenever the metric has a value: the policy above then runs every minute.
resource "aws_cloudwatch_metric_alarm" "accounts_with_work" {
  alarm_name          = "${var.name_prefix}-worker-accounts-with-work"
  alarm_description   = "Sets the worker service's desired count to ceil(AccountsWithWork / worker_concurrency) every minute (always in ALARM while the metric has data; see autoscaling.tf)."
  namespace           = var.autoscaling_metric_namespace
  metric_name         = "AccountsWithWork"
  dimensions          = local.autoscaling_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanOrEqualToThreshold"
  # No data: no action (the desired count stays); the idle alarm below handles a long gap.
  treat_missing_data = "missing"
  alarm_actions      = [aws_appautoscaling_policy.accounts_with_work.arn]
}

# Nothing to do for autoscaling_idle_minutes (0, or no metric at all): 0 tasks.
resource "aws_appautoscaling_policy" "idle" {
  name               = "${var.name_prefix}-worker-idle"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = var.autoscaling_scale_in_cooldown_secs
    metric_aggregation_type = "Maximum"

    # The alarm is "< 0.5": every breaching value is below the threshold.
    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = 0
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "idle" {
  alarm_name          = "${var.name_prefix}-worker-idle"
  alarm_description   = "No account with work (or no AccountsWithWork metric) for ${var.autoscaling_idle_minutes} minutes: the worker service goes to 0 tasks."
  comparison_operator = "LessThanThreshold"
  threshold           = 0.5
  evaluation_periods  = var.autoscaling_idle_minutes
  datapoints_to_alarm = var.autoscaling_idle_minutes
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_appautoscaling_policy.idle.arn]

  metric_query {
    id          = "filled"
    expression  = "FILL(accounts, 0)"
    label       = "AccountsWithWork, 0 when missing"
    return_data = true
  }

  metric_query {
    id = "accounts"
    metric {
      namespace   = var.autoscaling_metric_namespace
      metric_name = "AccountsWithWork"
      dimensions  = local.autoscaling_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
}

