# A complete Accessflow deployment: core storage, the worker service, the nightly
# coordinator schedule, the metrics exporter, the monitoring (Amazon Managed Service for
# Prometheus, Amazon Managed Grafana) and the alarms. The customer_role module is applied
# by customers in their own accounts (see ../../modules/customer_role and
# customer-role.tf.example here).

locals {
  kms_alias_prefix = "alias/${var.name_prefix}/"
}

module "core" {
  source       = "../../modules/core"
  name_prefix  = var.name_prefix
  customers    = var.customers
  gc_keep_days = var.gc_keep_days
}

module "worker_service" {
  source                  = "../../modules/worker_service"
  name_prefix             = var.name_prefix
  image                   = var.image
  table_name              = module.core.table_name
  table_arn               = module.core.table_arn
  bucket_name             = module.core.bucket_name
  bucket_arn              = module.core.bucket_arn
  bucket_prefix           = module.core.bucket_prefix
  kms_key_arn             = module.core.kms_key_arn
  kms_alias_prefix        = local.kms_alias_prefix
  log_group_prefix        = module.core.log_group_prefix
  customer_role_name      = var.customer_role_name
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  max_tasks               = var.max_tasks
  worker_concurrency      = var.worker_concurrency
  max_receive_count       = var.max_receive_count
  visibility_timeout_secs = var.visibility_timeout_secs

  metrics_collector_enabled   = true
  prometheus_workspace_arn    = module.monitoring.workspace_arn
  prometheus_remote_write_url = module.monitoring.remote_write_url
  collector_image             = var.collector_image
}

module "coordinator_schedule" {
  source                       = "../../modules/coordinator_schedule"
  name_prefix                  = var.name_prefix
  image                        = var.image
  cluster_arn                  = module.worker_service.cluster_arn
  subnet_ids                   = var.subnet_ids
  security_group_ids           = [module.worker_service.security_group_id]
  table_name                   = module.core.table_name
  table_arn                    = module.core.table_arn
  bucket_name                  = module.core.bucket_name
  bucket_arn                   = module.core.bucket_arn
  bucket_prefix                = module.core.bucket_prefix
  kms_key_arn                  = module.core.kms_key_arn
  kms_alias_prefix             = local.kms_alias_prefix
  log_group_prefix             = module.core.log_group_prefix
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_expression_timezone
  max_receive_count            = var.max_receive_count
  visibility_timeout_secs      = var.visibility_timeout_secs
  gc_keep_days                 = var.gc_keep_days
}

module "exporter_service" {
  source             = "../../modules/exporter_service"
  name_prefix        = var.name_prefix
  image              = var.image
  deliver_by         = var.deliver_by
  cluster_arn        = module.worker_service.cluster_arn
  subnet_ids         = var.subnet_ids
  security_group_ids = [module.worker_service.security_group_id]
  table_name         = module.core.table_name
  table_arn          = module.core.table_arn
  bucket_name        = module.core.bucket_name
  bucket_prefix      = module.core.bucket_prefix
  kms_key_arn        = module.core.kms_key_arn
  kms_alias_prefix   = local.kms_alias_prefix
  log_group_prefix   = module.core.log_group_prefix

  metrics_collector_enabled   = true
  prometheus_workspace_arn    = module.monitoring.workspace_arn
  prometheus_remote_write_url = module.monitoring.remote_write_url
  collector_image             = var.collector_image
}

module "monitoring" {
  source                   = "../../modules/monitoring"
  name_prefix              = var.name_prefix
  alarm_topic_arn          = module.alarms.topic_arn
  kms_key_arn              = module.core.kms_key_arn
  log_group_prefix         = module.core.log_group_prefix
  grafana_enabled          = var.grafana_enabled
  grafana_admin_group_ids  = var.grafana_admin_group_ids
  grafana_viewer_group_ids = var.grafana_viewer_group_ids
}

module "alarms" {
  source                     = "../../modules/alarms"
  name_prefix                = var.name_prefix
  alarm_emails               = var.alarm_emails
  cluster_name               = module.worker_service.cluster_name
  cluster_arn                = module.worker_service.cluster_arn
  worker_service_name        = module.worker_service.service_name
  coordinator_task_family    = module.coordinator_schedule.task_definition_family
  gc_task_family             = module.coordinator_schedule.gc_task_definition_family
  worker_log_group_name      = module.worker_service.log_group_name
  coordinator_log_group_name = module.coordinator_schedule.log_group_name

  exporter_alarms_enabled   = true
  exporter_log_group_name   = module.exporter_service.log_group_name
  prometheus_alerts_enabled = true
  prometheus_workspace_arn  = module.monitoring.workspace_arn
}
