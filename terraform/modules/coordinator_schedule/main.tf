# Accessflow nightly coordinator: an ECS task definition running `coordinator start --wait`
# and an EventBridge Scheduler schedule that runs it every night.
#
# The tenants file. `coordinator` reads the tenants file only from a local path
# (ACCESSFLOW_TENANTS / --tenants; coordinator/src/tenants_source.rs, TenantsFile::load):
# no S3 or Secrets Manager source exists in the code. So the file's content is kept in a
# Secrets Manager secret (it holds the customers' ExternalIds; up to 64 KB, roughly 300
# accounts), which ECS injects into a small init container; that container writes it to a
# task-scoped volume and exits, and the coordinator container starts after it with
# ACCESSFLOW_TENANTS pointing at the file. The init container uses the Accessflow image
# itself (deploy/Dockerfile is Debian slim: it has sh and printf). The task role gets no
# access to the secret; the execution role reads it.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.name
  partition    = data.aws_partition.current.partition
  tenants_dir  = "/tenants"
  tenants_path = "/tenants/tenants.toml"

  # Exactly the variables the coordinator reads (shared/src/config.rs,
  # shared/src/aws/config.rs, coordinator/src/main.rs), plus the SDK's AWS_REGION and
  # tracing's RUST_LOG / NO_COLOR.
  coordinator_environment = {
    ACCESSFLOW_BACKEND            = "aws"
    ACCESSFLOW_NAME_PREFIX        = var.name_prefix
    ACCESSFLOW_TABLE              = var.table_name
    ACCESSFLOW_BUCKET             = var.bucket_name
    ACCESSFLOW_BUCKET_PREFIX      = var.bucket_prefix
    ACCESSFLOW_KMS_ALIAS_PREFIX   = var.kms_alias_prefix
    ACCESSFLOW_VISIBILITY_TIMEOUT = tostring(var.visibility_timeout_secs)
    ACCESSFLOW_MAX_RECEIVE_COUNT  = tostring(var.max_receive_count)
    ACCESSFLOW_RUN_DEADLINE_SECS  = tostring(var.run_deadline_secs)
    ACCESSFLOW_TENANTS            = local.tenants_path
    AWS_REGION                    = local.region
    RUST_LOG                      = var.rust_log
    NO_COLOR                      = "1"
  }

  # gc reads no tenants file.
  gc_environment = { for k, v in local.coordinator_environment : k => v if k != "ACCESSFLOW_TENANTS" }
  gc_enabled     = var.gc_keep_days != null
}

resource "aws_cloudwatch_log_group" "coordinator" {
  name              = "${var.log_group_prefix}${var.name_prefix}/coordinator"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_secretsmanager_secret" "tenants" {
  #checkov:skip=CKV2_AWS_57:The secret is the tenants file (configuration), not a credential that can be rotated by a Lambda; the ExternalIds in it change only with the customers' trust policies.
  name                    = "${var.name_prefix}/tenants.toml"
  description             = "Accessflow tenants file (TOML, tenants.example.toml); read by the nightly coordinator task"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "tenants" {
  count         = var.tenants_toml == null ? 0 : 1
  secret_id     = aws_secretsmanager_secret.tenants.id
  secret_string = var.tenants_toml
}

resource "aws_ecs_task_definition" "coordinator" {
  family                   = "${var.name_prefix}-coordinator"
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

  # Task-scoped storage for the tenants file. Nothing else is written: with the AWS backend
  # neither binary writes files, so both root file systems are read-only.
  volume {
    name = "tenants"
  }

  container_definitions = jsonencode([
    {
      name                   = "tenants"
      image                  = coalesce(var.tenants_init_image, var.image)
      essential              = false
      readonlyRootFilesystem = true
      # Fargate creates task volumes owned by root; the init step writes the file as root
      # (it runs nothing but printf), the coordinator (UID 10001) only reads it.
      user        = "0"
      entryPoint  = ["sh", "-c"]
      command     = ["printf '%s\\n' \"$TENANTS_TOML\" > ${local.tenants_path}"]
      secrets     = [{ name = "TENANTS_TOML", valueFrom = aws_secretsmanager_secret.tenants.arn }]
      mountPoints = [{ sourceVolume = "tenants", containerPath = local.tenants_dir, readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.coordinator.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "tenants"
        }
      }
    },
    {
      name                   = "coordinator"
      image                  = var.image
      command                = var.command
      essential              = true
      readonlyRootFilesystem = true
      dependsOn              = [{ containerName = "tenants", condition = "SUCCESS" }]
      environment            = [for k in sort(keys(local.coordinator_environment)) : { name = k, value = local.coordinator_environment[k] }]
      mountPoints            = [{ sourceVolume = "tenants", containerPath = local.tenants_dir, readOnly = true }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.coordinator.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "coordinator"
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_scheduler_schedule" "nightly" {
  #checkov:skip=CKV_AWS_297:The schedule's target input holds no secret (task definition, subnets, security group); the AWS-owned key is enough.
  name                         = "${var.name_prefix}-nightly"
  description                  = "Accessflow: run `coordinator start --wait` every night"
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_expression_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.cluster_arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.coordinator.arn_without_revision
      launch_type         = "FARGATE"
      platform_version    = "LATEST"
      task_count          = 1

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = var.assign_public_ip
      }
    }

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}

# Retention: `coordinator gc --keep-days N` once a day, in its own task definition (no
# tenants file needed). The S3 lifecycle rules of the core module are only its backstop.
resource "aws_ecs_task_definition" "gc" {
  count                    = local.gc_enabled ? 1 : 0
  family                   = "${var.name_prefix}-gc"
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

  container_definitions = jsonencode([
    {
      name                   = "coordinator"
      image                  = var.image
      command                = ["coordinator", "gc", "--keep-days", tostring(var.gc_keep_days)]
      essential              = true
      readonlyRootFilesystem = true
      environment            = [for k in sort(keys(local.gc_environment)) : { name = k, value = local.gc_environment[k] }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.coordinator.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "gc"
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_scheduler_schedule" "gc" {
  #checkov:skip=CKV_AWS_297:The schedule's target input holds no secret (task definition, subnets, security group); the AWS-owned key is enough.
  count                        = local.gc_enabled ? 1 : 0
  name                         = "${var.name_prefix}-gc"
  description                  = "Accessflow: run `coordinator gc --keep-days ${var.gc_keep_days}` once a day"
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  schedule_expression          = var.gc_schedule_expression
  schedule_expression_timezone = var.schedule_expression_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.cluster_arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.gc[0].arn_without_revision
      launch_type         = "FARGATE"
      platform_version    = "LATEST"
      task_count          = 1

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = var.assign_public_ip
      }
    }

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}
