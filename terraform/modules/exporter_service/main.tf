# The metrics exporter: one always-on Fargate task running `coordinator exporter`, which
# reads the ledger and the queues every 30 s (read-only) and
#
# - serves the latest run's state as Prometheus metrics on 127.0.0.1:<metrics_port>/metrics
#   (job accessflow-exporter), scraped by an ADOT collector sidecar that remote-writes
#   them to Amazon Managed Service for Prometheus (metrics_collector_enabled);
# - prints DlqMessages, FailedAccounts, NightPastDeadline and ExporterHeartbeat in
#   CloudWatch's embedded metric format on stdout (namespace Accessflow, dimension
#   Deployment = name_prefix): the awslogs driver sends them to the log group and
#   CloudWatch Logs extracts the metrics, which the alarms module alarms on. No API call.
#
# Exactly one task: desired_count 1, and a deployment stops the old task before starting
# the new one (minimum 0 %, maximum 100 %), so two exporters never report at once.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # The AWS backend's settings (shared/src/aws/config.rs), as the coordinator's nightly
  # task sets them (coordinator_schedule), plus the SDK's AWS_REGION and tracing's
  # RUST_LOG / NO_COLOR. No tenants file: the exporter reads the tenant registry in the
  # ledger, like `coordinator gc`.
  exporter_environment = {
    ACCESSFLOW_BACKEND          = "aws"
    ACCESSFLOW_NAME_PREFIX      = var.name_prefix
    ACCESSFLOW_TABLE            = var.table_name
    ACCESSFLOW_BUCKET           = var.bucket_name
    ACCESSFLOW_BUCKET_PREFIX    = var.bucket_prefix
    ACCESSFLOW_KMS_ALIAS_PREFIX = var.kms_alias_prefix
    AWS_REGION                  = local.region
    RUST_LOG                    = var.rust_log
    NO_COLOR                    = "1"
  }

  exporter_command = [
    "coordinator", "exporter",
    "--metrics-addr", "127.0.0.1:${var.metrics_port}",
    "--refresh-secs", tostring(var.refresh_secs),
    "--deliver-by", var.deliver_by,
  ]

  exporter_container = {
    name                   = "exporter"
    image                  = var.image
    command                = local.exporter_command
    essential              = true
    readonlyRootFilesystem = true
    environment            = [for k in sort(keys(local.exporter_environment)) : { name = k, value = local.exporter_environment[k] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.exporter.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "exporter"
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "exporter" {
  name              = "${var.log_group_prefix}${var.name_prefix}/exporter"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# The ADOT collector beside the exporter: job accessflow-exporter. Essential: if it dies,
# ECS replaces the task, and Prometheus has the exporter back.
module "collector" {
  source           = "../collector_sidecar"
  job_name         = "accessflow-exporter"
  metrics_port     = var.metrics_port
  remote_write_url = var.prometheus_remote_write_url
  region           = local.region
  image            = var.collector_image
  essential        = true
  log_group_name   = aws_cloudwatch_log_group.exporter.name
}

locals {
  # The task's containers: the exporter, and the collector when metrics_collector_enabled
  # (plan_check.py reads this list back from a plan).
  container_definitions = concat(
    [local.exporter_container],
    var.metrics_collector_enabled ? [module.collector.container_definition] : [],
  )
}

resource "aws_ecs_task_definition" "exporter" {
  family                   = "${var.name_prefix}-exporter"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode(local.container_definitions)

  tags = var.tags
}

resource "aws_ecs_service" "exporter" {
  name                               = "${var.name_prefix}-exporter"
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.exporter.arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = var.tags
}
