# Accessflow workers: an ECS cluster and the `worker serve` service (Fargate by default,
# EC2 through launch_type or a capacity provider), its task definition, log group and
# roles. The service's task count belongs to autoscaling.tf (written separately: it scales
# aws_ecs_service.worker between 0 and var.max_tasks); Terraform ignores desired_count
# after creation.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.name
  partition    = data.aws_partition.current.partition
  cluster_name = coalesce(var.cluster_name, var.name_prefix)
  fargate      = length(var.capacity_provider_strategy) == 0 ? var.launch_type == "FARGATE" : anytrue([for s in var.capacity_provider_strategy : startswith(s.capacity_provider, "FARGATE")])

  # Exactly the variables the binaries read (shared/src/config.rs, shared/src/aws/config.rs,
  # worker/src/startup.rs), plus the SDK's AWS_REGION and tracing's RUST_LOG / NO_COLOR
  # (no ANSI escapes; off a terminal the binaries log JSON lines, which the alarms module's
  # metric filter { $.level = "ERROR" } reads).
  worker_environment = {
    ACCESSFLOW_BACKEND            = "aws"
    ACCESSFLOW_NAME_PREFIX        = var.name_prefix
    ACCESSFLOW_TABLE              = var.table_name
    ACCESSFLOW_BUCKET             = var.bucket_name
    ACCESSFLOW_BUCKET_PREFIX      = var.bucket_prefix
    ACCESSFLOW_KMS_ALIAS_PREFIX   = var.kms_alias_prefix
    ACCESSFLOW_WORKER_CONCURRENCY = tostring(var.worker_concurrency)
    ACCESSFLOW_VISIBILITY_TIMEOUT = tostring(var.visibility_timeout_secs)
    ACCESSFLOW_MAX_RECEIVE_COUNT  = tostring(var.max_receive_count)
    ACCESSFLOW_MAX_HOLD_SECS      = tostring(var.max_hold_secs)
    ACCESSFLOW_STOP_TIMEOUT       = tostring(var.stop_timeout_secs)
    AWS_REGION                    = local.region
    RUST_LOG                      = var.rust_log
    NO_COLOR                      = "1"
  }

  # With the metrics collector, `worker serve` also serves /metrics on the task's loopback
  # (awsvpc: the containers of one task share localhost); no port mapping, no security
  # group rule, so nothing outside the task reaches it.
  worker_command = concat(var.command, var.metrics_collector_enabled ? ["--metrics-addr", "127.0.0.1:${var.metrics_port}"] : [])

  worker_container = {
    name      = "worker"
    image     = var.image
    command   = local.worker_command
    essential = true
    # With the AWS backend the worker writes no files.
    readonlyRootFilesystem = true
    # SIGTERM: the worker stops receiving, finishes the message in hand, releases the
    # rest and exits 0 within ACCESSFLOW_STOP_TIMEOUT; ECS waits 5 s more.
    stopTimeout = var.stop_timeout_secs + 5
    environment = [for k in sort(keys(local.worker_environment)) : { name = k, value = local.worker_environment[k] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }
}

# The ADOT collector beside the worker (metrics_collector_enabled): scrapes the worker's
# /metrics as job accessflow-worker and remote-writes to the AMP workspace. Not essential:
# a collector that dies leaves the worker working.
module "collector" {
  source           = "../collector_sidecar"
  job_name         = "accessflow-worker"
  metrics_port     = var.metrics_port
  remote_write_url = var.prometheus_remote_write_url
  region           = local.region
  image            = var.collector_image
  essential        = false
  log_group_name   = aws_cloudwatch_log_group.worker.name
}

locals {
  # The task's containers: the worker, and the collector when metrics_collector_enabled
  # (plan_check.py reads this list back from a plan).
  container_definitions = concat(
    [local.worker_container],
    var.metrics_collector_enabled ? [module.collector.container_definition] : [],
  )
}

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = "${var.log_group_prefix}${var.name_prefix}/worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-tasks"
  description = "Accessflow tasks: no inbound; outbound HTTPS to AWS APIs only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (SQS, SNS, DynamoDB, S3, KMS, STS, IAM, ECR, CloudWatch Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name_prefix}-worker"
  requires_compatibilities = local.fargate ? ["FARGATE"] : ["EC2"]
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

resource "aws_ecs_service" "worker" {
  #checkov:skip=CKV_AWS_332:platform_version is LATEST whenever the service runs on Fargate without capacity providers; it must be null on EC2 (and with capacity providers, which pick their own); checkov cannot evaluate the conditional.
  name                   = "${var.name_prefix}-worker"
  cluster                = aws_ecs_cluster.this.id
  task_definition        = aws_ecs_task_definition.worker.arn
  desired_count          = var.desired_count
  launch_type            = length(var.capacity_provider_strategy) == 0 ? var.launch_type : null
  platform_version       = length(var.capacity_provider_strategy) == 0 && var.launch_type == "FARGATE" ? "LATEST" : null
  enable_execute_command = false
  propagate_tags         = "SERVICE"

  dynamic "capacity_provider_strategy" {
    for_each = var.capacity_provider_strategy
    content {
      capacity_provider = capacity_provider_strategy.value.capacity_provider
      weight            = capacity_provider_strategy.value.weight
      base              = capacity_provider_strategy.value.base
    }
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # autoscaling.tf owns the task count.
    ignore_changes = [desired_count]
  }

  tags = var.tags
}
