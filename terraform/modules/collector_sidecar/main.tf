# An ADOT (AWS Distro for OpenTelemetry) collector container that scrapes one Accessflow
# process's /metrics over the task's loopback and remote-writes the samples to Amazon
# Managed Service for Prometheus. No resources: it only builds the container definition,
# which worker_service and exporter_service put beside their own container.
#
# The configuration goes in through AOT_CONFIG_CONTENT (the ADOT image reads its YAML
# configuration from that variable), so no file and no SSM parameter is needed:
#
#   prometheus receiver (job = var.job_name, target localhost:<port>)
#     -> resourcedetection (ecs): the task's id from the ECS task metadata endpoint
#     -> resource: service.instance.id = the task id, so every task's series get their
#        own `instance` label (all tasks scrape "localhost:<port>"; without this, two
#        worker tasks would write the same series and AMP would reject one as out of
#        order)
#     -> batch
#     -> prometheusremotewrite (sigv4auth, service aps): `job` and `instance` come from
#        service.name and service.instance.id, as the Prometheus conventions say.
#
# The task role needs aps:RemoteWrite on the workspace (the modules that use this one grant
# it in their own inline policy `collector-remote-write`). The health_check extension
# answers on 127.0.0.1:13133, which the image's /healthcheck binary asks.

locals {
  health_check_endpoint = "127.0.0.1:13133"

  config = yamlencode({
    extensions = {
      health_check = { endpoint = local.health_check_endpoint }
      sigv4auth = {
        region  = var.region
        service = "aps"
      }
    }
    receivers = {
      prometheus = {
        config = {
          global = {
            scrape_interval = var.scrape_interval
            scrape_timeout  = "10s"
          }
          scrape_configs = [{
            job_name       = var.job_name
            metrics_path   = "/metrics"
            static_configs = [{ targets = ["localhost:${var.metrics_port}"] }]
          }]
        }
      }
    }
    processors = {
      resourcedetection = {
        detectors = ["ecs"]
        timeout   = "5s"
        override  = false
      }
      "resource/instance" = {
        attributes = [{
          key            = "service.instance.id"
          from_attribute = "aws.ecs.task.id"
          action         = "upsert"
        }]
      }
      batch = { timeout = "30s" }
    }
    exporters = {
      prometheusremotewrite = {
        endpoint = var.remote_write_url
        auth     = { authenticator = "sigv4auth" }
        # Only job/instance and the metric's own labels: no label per resource attribute.
        resource_to_telemetry_conversion = { enabled = false }
      }
    }
    service = {
      extensions = ["health_check", "sigv4auth"]
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["resourcedetection", "resource/instance", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
      }
    }
  })

  container_definition = {
    name      = var.container_name
    image     = var.image
    essential = var.essential
    # The collector keeps its queue in memory and writes no file.
    readonlyRootFilesystem = true
    user                   = "10001"
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.config }]
    healthCheck = {
      command     = ["/healthcheck"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 15
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = var.region
        awslogs-stream-prefix = var.log_stream_prefix
      }
    }
  }
}
