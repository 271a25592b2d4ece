# What each machine gets at first boot: a cloud-config that writes the systemd units, the env
# files and the list of secrets to fetch, then runs templates/bootstrap.sh.tftpl. The files are
# those of docs/cluster.md (env/ROLE.env with CAIRN_NATS_URL, CAIRN_REPLICAS, CAIRN_NATS_CREDS,
# CAIRN_NATS_TLS_CA; creds/ROLE.json; nodes/NODE.conf), at the same places on every tier:
# /etc/cairn/nats/ for NATS files, /etc/cairn/tls/ for certificates, so the hosts module's units
# and these read alike.

locals {
  nats_env_common = [
    "CAIRN_NATS_URL=${local.nats_urls}",
    "CAIRN_REPLICAS=${min(3, var.nats_nodes)}",
    "CAIRN_NATS_TLS_CA=/etc/cairn/tls/ca.pem",
  ]
  # env/ROLE.env as `cairn cluster config` writes it (NATS nodes make their own; other machines
  # get these, which name the same URLs and files).
  role_env = merge({ for role in concat(keys(local.service_ports), ["gateway"]) : role => join("\n", concat(
    ["# Cairn ${role} on NATS cluster ${var.name}"], local.nats_env_common,
    ["CAIRN_NATS_CREDS=/etc/cairn/nats/creds/${role}.json"],
    role == "scheduler" ? ["CAIRN_SCHEDULER_AGENT_NATS_CREDS=/etc/cairn/nats/creds/agent.json", "CAIRN_SCHEDULER_AGENT_NATS_URL=${local.nats_urls}"] : [],
    )) }, {
    agent = join("\n", ["# Cairn agent on NATS cluster ${var.name}", "CAIRN_AGENT_NATS_URL=${local.nats_urls}", "CAIRN_NATS_TLS_CA=/etc/cairn/tls/ca.pem"])
  })

  # Every NATS user of cairn.up.NATS_USERS: each process, the agents' user, the operator's admin.
  nats_roles = concat(keys(local.service_ports), ["gateway", "agent", "admin"])

  common_env = {
    CAIRN_DATA_DIR         = "/var/lib/cairn"
    CAIRN_SERVICE_KEY_FILE = "/etc/cairn/secrets/service.key"
  }

  bootstrap = { for role in ["nats", "services", "gateway", "agents"] : role => {
    role                  = role
    name                  = var.name
    region                = data.aws_region.current.name
    cairn_package         = var.cairn_package
    pip_index_url         = var.pip_index_url
    log_group             = aws_cloudwatch_log_group.tier[role].name
    agent_token_parameter = var.agent_token_parameter
    nats_names            = [for node in local.nats : node.name]
    nats_nodes            = local.nats
    replicas              = min(3, var.nats_nodes)
    client_port           = local.nats_client_port
    cluster_port          = local.nats_cluster_port
    leaf_port             = local.nats_leaf_port
  } }
}

# A systemd unit per process: restarted when it dies, logs to /var/log/cairn/<unit>.log.
locals {
  unit_template = <<-UNIT
    [Unit]
    Description=Cairn %s
    After=network-online.target
    Wants=network-online.target

    [Service]
    User=cairn
    Group=cairn
    %s
    ExecStart=%s
    Restart=always
    RestartSec=2
    TimeoutStopSec=30
    LimitNOFILE=65536
    StandardOutput=append:/var/log/cairn/%s.log
    StandardError=inherit

    [Install]
    WantedBy=multi-user.target
  UNIT
}

locals {
  # Services per service host: env files and units. Replicas after the first are r2, r3, ...
  # (local.replica_names) as `cairn up --service-replicas` names them.
  service_host_files = { for host_index, host in local.service_hosts : host.name => concat(
    [for service in local.placement[host.name] : {
      path        = "/etc/cairn/env/${service}.env"
      permissions = "0600"
      content = join("\n", [for key, value in merge(local.common_env, lookup(local.service_wiring, service, {}), {
        CAIRN_HOST = host.ip, CAIRN_PORT = tostring(local.service_ports[service])
      }, host_index > 0 ? { CAIRN_REPLICA = local.replica_names[host_index] } : {}) : "${key}=${value}"])
    }],
    [for service in local.placement[host.name] : {
      path        = "/etc/systemd/system/cairn-${service}.service"
      permissions = "0644"
      content = format(local.unit_template, service,
        "EnvironmentFile=/etc/cairn/nats/env/${service}.env\nEnvironmentFile=/etc/cairn/env/${service}.env",
      "/opt/cairn/bin/python -m cairn.services.${service}", service)
    }],
    [for service in local.placement[host.name] : { path = "/etc/cairn/nats/env/${service}.env", permissions = "0600", content = local.role_env[service] }],
  ) }

  service_host_secrets = { for host_index, host in local.service_hosts : host.name => concat(
    [{ parameter = "${local.parameter_path}/tls/ca.pem", path = "/etc/cairn/tls/ca.pem" },
    { parameter = "${local.parameter_path}/service-key", path = "/etc/cairn/secrets/service.key" }],
    [for service in local.placement[host.name] : { parameter = "${local.parameter_path}/creds/${service}", path = "/etc/cairn/nats/creds/${service}.json" }],
    contains(local.placement[host.name], "scheduler") ? [{ parameter = "${local.parameter_path}/creds/agent", path = "/etc/cairn/nats/creds/agent.json" }] : [],
  ) }

  nats_files = { for node in local.nats : node.name => [{
    path        = "/etc/systemd/system/cairn-nats.service"
    permissions = "0644"
    content     = format(local.unit_template, "nats-server ${node.name}", "", "/opt/cairn/bin/nats-server -c /etc/cairn/nats/nodes/${node.name}.conf", "nats")
  }] }
  nats_secrets = { for node in local.nats : node.name => concat(
    [{ parameter = "${local.parameter_path}/tls/ca.pem", path = "/etc/cairn/tls/ca.pem" },
      { parameter = "${local.parameter_path}/tls/${node.name}.pem", path = "/etc/cairn/tls/${node.name}.pem" },
    { parameter = "${local.parameter_path}/tls/${node.name}-key.pem", path = "/etc/cairn/tls/${node.name}-key.pem" }],
    [for role in local.nats_roles : { parameter = "${local.parameter_path}/creds/${role}", path = "/etc/cairn/nats/creds/${role}.json" }],
  ) }

  gateway_files = [
    { path = "/etc/cairn/nats/env/gateway.env", permissions = "0600", content = local.role_env.gateway },
    { path = "/etc/cairn/env/gateway.env", permissions = "0600", content = join("\n", [for key, value in merge(local.common_env, {
      CAIRN_HOST             = "0.0.0.0", CAIRN_PORT = tostring(local.gateway_port), CAIRN_SERVICES = local.gateway_services,
      CAIRN_GATEWAY_REPLICAS = tostring(var.gateways.min_size)
    }) : "${key}=${value}"]) },
    { path = "/etc/systemd/system/cairn-gateway.service", permissions = "0644", content = format(local.unit_template, "gateway",
      "EnvironmentFile=/etc/cairn/nats/env/gateway.env\nEnvironmentFile=/etc/cairn/env/gateway.env\nEnvironmentFile=/etc/cairn/instance.env",
    "/bin/sh -c 'CAIRN_REPLICA=gw-$${CAIRN_INSTANCE} exec /opt/cairn/bin/python -m cairn.services.gateway'", "gateway") },
  ]
  gateway_secrets = [
    { parameter = "${local.parameter_path}/tls/ca.pem", path = "/etc/cairn/tls/ca.pem" },
    { parameter = "${local.parameter_path}/service-key", path = "/etc/cairn/secrets/service.key" },
    { parameter = "${local.parameter_path}/creds/gateway", path = "/etc/cairn/nats/creds/gateway.json" },
  ]

  agent_files = { for pool_name, pool in var.agent_pools : pool_name => [
    { path = "/etc/cairn/nats/env/agent.env", permissions = "0600", content = local.role_env.agent },
    { path = "/etc/systemd/system/cairn-agent.service", permissions = "0644", content = format(local.unit_template, "agent (${pool_name})",
      "EnvironmentFile=/etc/cairn/nats/env/agent.env\nEnvironmentFile=/etc/cairn/instance.env\nEnvironmentFile=/etc/cairn/agent-token.env\nEnvironment=CAIRN_URL=${local.public_url}",
      "/bin/sh -c 'exec /opt/cairn/bin/cairn agent --queue ${pool.queue}${pool.gpus > 0 ? " --gpus ${pool.gpus}" : ""} --name ${pool_name}-$${CAIRN_INSTANCE} --work-dir /var/lib/cairn/agent'",
    "agent") },
  ] }
  agent_secrets = [{ parameter = "${local.parameter_path}/tls/ca.pem", path = "/etc/cairn/tls/ca.pem" }]
}

locals {
  # cloud-config: the files, the list of secrets, then the bootstrap script.
  machines = merge(
    { for node in local.nats : "nats/${node.name}" => { role = "nats", node = node.name, files = local.nats_files[node.name], secrets = local.nats_secrets[node.name], volume = aws_ebs_volume.nats[node.name].id } },
    { for host in local.service_hosts : "services/${host.name}" => { role = "services", node = host.name, files = local.service_host_files[host.name], secrets = local.service_host_secrets[host.name], volume = "" } },
    { "gateway/all" = { role = "gateway", node = "", files = local.gateway_files, secrets = local.gateway_secrets, volume = "" } },
    { for pool_name, pool in var.agent_pools : "agents/${pool_name}" => { role = "agents", node = "", files = local.agent_files[pool_name], secrets = local.agent_secrets, volume = "" } },
  )
  secrets_helper     = file(format("%s/templates/cairn_secrets.py", path.module))
  bootstrap_template = format("%s/templates/bootstrap.sh.tftpl", path.module)
  secrets_spec = {
    region   = data.aws_region.current.name
    path     = local.parameter_path
    kms_key  = aws_kms_key.this.arn
    name     = var.name
    nodes    = [for node in local.nats : { name = node.name, ip = node.ip }]
    replicas = min(3, var.nats_nodes)
    sites    = keys(var.leaf_sites)
    ports    = { client = local.nats_client_port, cluster = local.nats_cluster_port, leaf = local.nats_leaf_port }
  }
  machine_files = { for key, spec in local.machines : key => concat(spec.files, [
    { path = "/etc/cairn/secrets.json", permissions = "0600", content = jsonencode(merge(local.secrets_spec, { node = spec.node, files = spec.secrets })) },
    { path = "/usr/local/sbin/cairn-secrets", permissions = "0700", content = local.secrets_helper },
    { path = "/usr/local/sbin/cairn-bootstrap", permissions = "0700", content = templatefile(local.bootstrap_template, merge(local.bootstrap[spec.role], {
      node = spec.node, volume_serial = replace(spec.volume, "-", ""), generator = spec.node == local.nats[0].name
    })) },
  ]) }
  cloud_config = { for key, files in local.machine_files : key => join("\n", ["#cloud-config", yamlencode({
    write_files = files
    runcmd      = [["/usr/local/sbin/cairn-bootstrap"]]
  })]) }
}
