# Cairn on three machines: a NATS node on each; the services and a gateway on the first two; an
# agent on the third; each address after the first three is an agent-only machine (queues
# extra_agent_queues). `terraform apply`, then use output.gateway_urls with output.admin_token_file.
terraform {
  required_version = ">= 1.4"
}

module "cairn" {
  source = "../../modules/hosts"

  cluster_name           = var.cluster_name
  ssh_private_key_file   = var.ssh_private_key_file
  install_source         = var.install_source
  service_manager        = var.service_manager
  replicas               = var.replicas
  root_dir               = var.root_dir
  local_dir              = var.local_dir
  local_cairn            = var.local_cairn
  extra_environment      = var.extra_environment
  service_environment    = var.service_environment
  remove_data_on_destroy = var.remove_data_on_destroy
  backup                 = var.backup
  machines = [for i, roles in concat([["nats", "services", "gateway"], ["nats", "services", "gateway"], ["nats", "agent"]],
    [for extra in slice(var.addresses, 3, length(var.addresses)) : ["agent"]]) : {
    name     = "cairn-${i + 1}"
    address  = var.addresses[i]
    roles    = roles
    ssh_port = var.ssh_port
    root_dir = var.separate_roots ? "${var.root_dir}/cairn-${i + 1}" : null
    agent    = { queues = i < 3 ? var.agent_queues : var.extra_agent_queues, gpus = var.agent_gpus }
  }]
}

output "gateway_urls" {
  value = module.cairn.gateway_urls
}

output "admin_token_file" {
  value = module.cairn.admin_token_file
}

output "services" {
  value = module.cairn.services
}

output "units" {
  value = module.cairn.units
}

output "nginx_config" {
  value = module.cairn.nginx_config
}
