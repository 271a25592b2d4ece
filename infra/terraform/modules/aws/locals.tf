locals {
  # Where each machine sits. NATS nodes and service hosts get fixed private addresses (the
  # certificates, the route lists and the gateway's CAIRN_SERVICES name them before any machine
  # exists); gateways and agents come and go in autoscaling groups and need none.
  zones           = var.availability_zones
  private_subnets = [for index, zone in local.zones : cidrsubnet(var.vpc_cidr, 4, index)]
  public_subnets  = [for index, zone in local.zones : cidrsubnet(var.vpc_cidr, 4, index + 8)]

  nats = [for index in range(var.nats_nodes) : {
    name   = "nats${index + 1}"
    subnet = index % length(local.zones)
    ip     = cidrhost(local.private_subnets[index % length(local.zones)], 10 + index)
  }]
  service_hosts = [for index in range(var.service_hosts) : {
    name   = "svc${index + 1}"
    subnet = index % length(local.zones)
    ip     = cidrhost(local.private_subnets[index % length(local.zones)], 40 + index)
  }]

  # The ports of docs/cluster.md: clients, routes, leaf sites; the services' private ports.
  nats_client_port  = 4222
  nats_cluster_port = 6222
  nats_leaf_port    = 7422
  gateway_port      = 8080
  service_ports = {
    registry = 7001, artifacts = 7002, metrics = 7003, scheduler = 7004,
    lineage  = 7005, deployments = 7006, monitor = 7007, pipelines = 7008,
  }
  # docs/cluster.md "Service replicas": the services cairn.up.REPLICABLE runs more than once, and
  # metrics (a test keeps this list in step) run on every service host; any other on the first one.
  replicable = ["registry", "lineage", "scheduler", "artifacts", "deployments", "monitor", "pipelines", "metrics"]
  placement = { for host_index, host in local.service_hosts : host.name => [
    for service in keys(local.service_ports) : service
    if contains(local.replicable, service) || host_index == 0
  ] }
  first_host_ip = local.service_hosts[0].ip
  # Each host's replica name (CAIRN_REPLICA): "" on the first, then r2, r3, ... as
  # `cairn up --service-replicas` names them. Every metrics replica keeps points of its own and
  # makes a durable consumer of the metrics stream per metrics replica up front:
  # CAIRN_WRITER_REPLICAS names them all, the same list on every host, the unnamed first "main".
  replica_names   = [for host_index, host in local.service_hosts : host_index == 0 ? "" : "r${host_index + 1}"]
  writer_replicas = join(",", [for name in local.replica_names : name == "" ? "main" : name])

  service_url = { for service, port in local.service_ports : service => (
    contains(local.replicable, service)
    ? [for host in local.service_hosts : "http://${host.ip}:${port}"]
    : ["http://${local.first_host_ip}:${port}"]
  ) }
  # The gateway's CAIRN_SERVICES: a URL, or a list of them for a replicated service.
  gateway_services = jsonencode(merge(
    { for service, urls in local.service_url : service => urls[0] if length(urls) == 1 },
    { for service, urls in local.service_url : service => urls if length(urls) > 1 },
  ))
  # What each service calls over HTTP (cairn.up.service_wiring, kept in step by hand).
  single_url = { for service, urls in local.service_url : service => urls[0] }
  service_wiring = {
    metrics     = { CAIRN_WRITER_REPLICAS = local.writer_replicas }
    scheduler   = { CAIRN_METRICS_URL = local.single_url.metrics }
    deployments = { CAIRN_SCHEDULER_URL = local.single_url.scheduler }
    monitor     = { CAIRN_DEPLOYMENTS_URL = local.single_url.deployments, CAIRN_ARTIFACTS_URL = local.single_url.artifacts }
    pipelines = { for service in ["scheduler", "registry", "artifacts", "metrics", "deployments", "monitor"] :
    "CAIRN_${upper(service)}_URL" => local.single_url[service] }
    artifacts = {
      CAIRN_ARTIFACTS_BACKEND   = "s3"
      CAIRN_ARTIFACTS_S3_BUCKET = aws_s3_bucket.artifacts.bucket
      CAIRN_ARTIFACTS_S3_REGION = data.aws_region.current.name
    }
  }

  nats_urls       = join(",", [for node in local.nats : "tls://${node.ip}:${local.nats_client_port}"])
  public_hostname = var.public_hostname != "" ? var.public_hostname : aws_lb.gateway.dns_name
  public_url      = "https://${local.public_hostname}"
  parameter_path  = "/${var.name}"
  log_group       = "/cairn/${var.name}"

  tags = merge({ "cairn:installation" = var.name, "managed-by" = "terraform" }, var.tags)
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }
}

data "aws_ami" "gpu" {
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*"]
  }
}
