locals {
  # Leaf mode is told by a setting that is not secret (for_each may not depend on a secret).
  cluster_mode = var.leaf_gateway_url == ""
  ns           = var.namespace
  labels       = merge({ "app.kubernetes.io/part-of" = "cairn", "cairn/installation" = var.name, "app.kubernetes.io/managed-by" = "terraform" }, var.labels)

  # The ports of docs/cluster.md and the services' ports (the same as the aws module's).
  nats_client_port  = 4222
  nats_cluster_port = 6222
  nats_leaf_port    = 7422
  gateway_port      = 8080
  service_ports = {
    registry = 7001, artifacts = 7002, metrics = 7003, scheduler = 7004,
    lineage  = 7005, deployments = 7006, monitor = 7007, pipelines = 7008,
  }
  # docs/cluster.md "Service replicas": the replicable services (cairn.up.REPLICABLE) and metrics
  # run several replicas (a StatefulSet each, so every replica keeps its name: its durable
  # consumers and read model, for metrics its own Parquet points, on a volume of its own);
  # artifacts only with artifacts_s3.
  replicable = ["registry", "lineage", "scheduler", "artifacts", "deployments", "monitor", "pipelines", "metrics"]
  # artifacts replicas share blobs only through S3: with a volume of its own it runs once (a
  # Deployment of one pod, replaced not rolled)
  replicated = local.cluster_mode ? [for service in local.replicable : service if service != "artifacts" || var.artifacts_s3 != null] : []
  singletons = local.cluster_mode ? [for service in keys(local.service_ports) : service if !contains(local.replicated, service)] : []

  nats_nodes = [for index in range(var.nats_replicas) : {
    name = "nats-${index}"
    host = "nats-${index}.nats.${local.ns}.svc.${var.cluster_domain}"
  }]
  nats_urls = join(",", [for node in local.nats_nodes : "tls://${node.host}:${local.nats_client_port}"])
  replicas  = min(3, var.nats_replicas)

  service_host = { for service, port in local.service_ports : service => "${service}.${local.ns}.svc.${var.cluster_domain}" }
  # The gateway's CAIRN_SERVICES: a replicated service as the list of its pods (the gateway
  # spreads requests and moves on from a dead one itself), the others by their Service.
  gateway_services = jsonencode(merge(
    { for service in local.singletons : service => "http://${local.service_host[service]}:${local.service_ports[service]}" },
    { for service in local.replicated : service => [for index in range(var.service_replicas) :
    "http://${service}-${index}.${local.service_host[service]}:${local.service_ports[service]}"] },
  ))
  single_url = { for service, port in local.service_ports : service => "http://${local.service_host[service]}:${port}" }
  # The metrics service is called at its first replica, the pod metrics-0 (its headless Service
  # would answer with any pod). Each metrics pod makes a durable consumer of the metrics stream
  # for every metrics pod up front: CAIRN_WRITER_REPLICAS lists their names, which are also
  # their CAIRN_REPLICA (the pod's name, metrics-0 included), the same list for each.
  metrics_url     = "http://metrics-0.${local.service_host.metrics}:${local.service_ports.metrics}"
  writer_replicas = join(",", [for index in range(var.service_replicas) : "metrics-${index}"])
  # What each service calls over HTTP (cairn.up.service_wiring, kept in step by hand).
  service_wiring = {
    metrics     = { CAIRN_WRITER_REPLICAS = local.writer_replicas }
    scheduler   = { CAIRN_METRICS_URL = local.metrics_url }
    deployments = { CAIRN_SCHEDULER_URL = local.single_url.scheduler }
    monitor     = { CAIRN_DEPLOYMENTS_URL = local.single_url.deployments, CAIRN_ARTIFACTS_URL = local.single_url.artifacts }
    pipelines = merge({ for service in ["scheduler", "registry", "artifacts", "deployments", "monitor"] :
    "CAIRN_${upper(service)}_URL" => local.single_url[service] }, { CAIRN_METRICS_URL = local.metrics_url })
    artifacts = var.artifacts_s3 == null ? {} : merge({
      CAIRN_ARTIFACTS_BACKEND   = "s3"
      CAIRN_ARTIFACTS_S3_BUCKET = var.artifacts_s3.bucket
      CAIRN_ARTIFACTS_S3_REGION = var.artifacts_s3.region
    }, var.artifacts_s3.endpoint == null ? {} : { CAIRN_ARTIFACTS_S3_ENDPOINT = var.artifacts_s3.endpoint })
  }

  # env/ROLE.env of `cairn cluster config`, as environment variables of each role's pods.
  nats_env = {
    CAIRN_NATS_URL         = local.nats_urls
    CAIRN_REPLICAS         = tostring(local.replicas)
    CAIRN_NATS_TLS_CA      = "/etc/cairn/tls/ca.pem"
    CAIRN_DATA_DIR         = "/var/lib/cairn"
    CAIRN_SERVICE_KEY_FILE = "/etc/cairn/secrets/service.key"
    CAIRN_HOST             = "0.0.0.0"
  }

  # Every NATS user of cairn.up.NATS_USERS: each process, the agents' user, the operator's admin.
  nats_roles = concat(keys(local.service_ports), ["gateway", "agent", "admin"])

  # The hardening every pod and container of this module gets.
  pod_user = 10001
}
