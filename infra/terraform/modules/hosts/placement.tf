# What runs where: every process of the cluster, by machine, with its environment.
locals {
  services    = ["registry", "artifacts", "metrics", "scheduler", "lineage", "deployments", "monitor", "pipelines"]
  local_dir   = coalesce(var.local_dir, "${path.root}/.cairn-secrets")
  nats_hosts  = [for m in var.machines : m if contains(m.roles, "nats")]
  svc_hosts   = [for m in var.machines : m if contains(m.roles, "services")]
  gw_hosts    = [for m in var.machines : m if contains(m.roles, "gateway")]
  nats_nodes  = [for m in local.nats_hosts : "${m.name}=${m.address}:${var.nats_ports.client}:${var.nats_ports.cluster}:${var.nats_ports.leaf}"]
  js_replicas = length(local.nats_hosts) >= 3 ? 3 : 1
  # where scheduled backups run (var.backup): one machine, by default the first NATS node
  backup_host = var.backup == null ? "" : coalesce(var.backup.host, local.nats_hosts[0].name)

  # replica r (0-based) of a service runs on the r-th services machine (round robin); replica 0
  # is the unnamed one (its read model stays in DATA/SERVICE), the others are r2, r3...
  replicas = flatten([for index, service in local.services : [
    for r in range(lookup(var.replicas, service, 1)) : {
      service = service
      unit    = r == 0 ? service : "${service}-r${r + 1}"
      replica = r == 0 ? "" : "r${r + 1}"
      host    = local.svc_hosts[r % length(local.svc_hosts)].name
      url     = "http://${local.svc_hosts[r % length(local.svc_hosts)].address}:${var.service_base_port + 10 * index + r}"
      port    = var.service_base_port + 10 * index + r
    }
  ]])
  # other services call a service at its first replica (cairn.up.service_wiring)
  first_url = { for p in local.replicas : p.service => p.url if p.replica == "" }
  # every metrics replica keeps points of its own (Parquet in its data dir) and makes a durable
  # consumer of the metrics stream for each metrics replica up front, so none misses a point:
  # CAIRN_WRITER_REPLICAS names them all, the same list for each, the unnamed first one "main"
  writer_replicas = join(",", [for p in local.replicas : p.replica == "" ? "main" : p.replica if p.service == "metrics"])
  wiring = {
    metrics     = { CAIRN_WRITER_REPLICAS = local.writer_replicas }
    scheduler   = { CAIRN_METRICS_URL = local.first_url.metrics }
    deployments = { CAIRN_SCHEDULER_URL = local.first_url.scheduler }
    monitor     = { CAIRN_DEPLOYMENTS_URL = local.first_url.deployments, CAIRN_ARTIFACTS_URL = local.first_url.artifacts }
    pipelines = { for name in ["scheduler", "registry", "artifacts", "metrics", "deployments", "monitor"] :
    "CAIRN_${upper(name)}_URL" => local.first_url[name] }
  }
  # the gateways' CAIRN_SERVICES: each service's list of replica URLs (services/gateway/replicas.py)
  gateway_services = { for service in local.services : service => [for p in local.replicas : p.url if p.service == service] }
  gateway_urls     = [for m in local.gw_hosts : "http://${m.address}:${var.gateway_port}"]

  # A release marker in every process's environment: a new wheel or pin restarts the processes.
  release = can(regex("\\.whl$", var.install_source)) ? basename(var.install_source) : (
  can(regex("^https?://", var.install_source)) ? var.package : var.install_source)

  hosts = { for m in var.machines : m.name => merge(m, {
    root     = coalesce(m.root_dir, var.root_dir)
    key_file = coalesce(m.ssh_private_key_file, var.ssh_private_key_file)
  }) }

  # units[host] = list of { name, service (nats env role), exec, env, ready }
  units = { for name, m in local.hosts : name => concat(
    contains(m.roles, "nats") ? [{
      name  = "nats"
      role  = ""
      exec  = "$VENV/bin/nats-server -c ${m.root}/etc/nats/nodes/${name}.conf"
      env   = {}
      ready = ""
    }] : [],
    [for p in local.replicas : {
      name  = p.unit
      role  = p.service
      exec  = "$VENV/bin/python -m cairn.services.${p.service}"
      ready = "${p.url}/healthz"
      env = merge(lookup(local.wiring, p.service, {}), lookup(var.service_environment, p.service, {}), {
        CAIRN_HOST = m.address, CAIRN_PORT = tostring(p.port), CAIRN_REPLICA = p.replica
      })
    } if p.host == name],
    contains(m.roles, "gateway") ? [{
      name  = "gateway"
      role  = "gateway"
      exec  = "$VENV/bin/python -m cairn.services.gateway"
      ready = "http://${m.address}:${var.gateway_port}/healthz"
      env = merge(lookup(var.service_environment, "gateway", {}), {
        CAIRN_HOST             = m.address
        CAIRN_PORT             = tostring(var.gateway_port)
        CAIRN_SERVICES         = jsonencode(local.gateway_services)
        CAIRN_GATEWAY_REPLICAS = tostring(length(local.gw_hosts))
        CAIRN_REPLICA          = length(local.gw_hosts) > 1 ? name : ""
      })
    }] : [],
    contains(m.roles, "agent") ? [for q in m.agent.queues : {
      name  = "agent-${q}"
      role  = "agent"
      exec  = "$VENV/bin/cairn agent --queue ${q} --name ${name}-${q} --host ${m.address} --work-dir ${m.root}/data/agent-${q}${m.agent.gpus == null ? "" : " --gpus ${m.agent.gpus}"}"
      ready = ""
      env   = merge(lookup(var.service_environment, "agent", {}), { CAIRN_URL = local.gateway_urls[0] })
    }] : [],
  ) }
}
