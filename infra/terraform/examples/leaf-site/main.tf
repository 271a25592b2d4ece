# A leaf-node site: on-premises GPU machines (a Kubernetes cluster of their own, with the NVIDIA
# device plugin) joining a Cairn cluster on AWS. The cloud side is the aws module with a leaf site
# named "lab" and a site-to-site VPN into its VPC; the site side is the kubernetes module in leaf
# mode: one nats-server that dials the NATS nodes' leaf ports through the VPN as the agent user,
# and GPU agents that connect to it and to the gateway over HTTPS.
#
# Two steps, because the leaf config is made by the cloud cluster's first NATS node at its
# first boot (docs/deploy.md "On AWS"):
#   terraform apply -target=module.cloud -target=aws_vpn_connection.lab
#   terraform apply        # once the cluster is up: the site reads its config from SSM

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.25, < 3.0"
    }
  }
}

provider "aws" {
  region = var.region
}

provider "kubernetes" {
  config_path    = var.site_kubeconfig
  config_context = var.site_kube_context
}

module "cloud" {
  source = "../../modules/aws"

  name                  = "cairn"
  availability_zones    = var.availability_zones
  allowed_cidrs         = concat(var.allowed_cidrs, [var.site_egress_cidr])
  certificate_arn       = var.certificate_arn
  public_hostname       = var.public_hostname
  cairn_package         = var.cairn_package
  agent_pools           = {}
  agent_token_parameter = var.agent_token_parameter
  leaf_sites            = { lab = [var.site_cidr] }
}

# The VPN between the site's router and the VPC: the NATS nodes have private addresses only.
resource "aws_vpn_gateway" "lab" {
  vpc_id = module.cloud.vpc_id
  tags   = { Name = "cairn-lab" }
}

resource "aws_vpn_gateway_route_propagation" "lab" {
  count          = length(var.availability_zones)
  vpn_gateway_id = aws_vpn_gateway.lab.id
  route_table_id = module.cloud.private_route_table_ids[count.index]
}

resource "aws_customer_gateway" "lab" {
  bgp_asn    = 65000
  ip_address = var.site_router_ip
  type       = "ipsec.1"
  tags       = { Name = "cairn-lab" }
}

resource "aws_vpn_connection" "lab" {
  vpn_gateway_id      = aws_vpn_gateway.lab.id
  customer_gateway_id = aws_customer_gateway.lab.id
  type                = "ipsec.1"
  static_routes_only  = true
  tags                = { Name = "cairn-lab" }
}

resource "aws_vpn_connection_route" "lab" {
  destination_cidr_block = var.site_cidr
  vpn_connection_id      = aws_vpn_connection.lab.id
}

# What the cluster made for the site (`cairn cluster config --site lab=0.0.0.0:4222`).
data "aws_ssm_parameter" "leaf_config" {
  name = module.cloud.leaf_config_parameters["lab"]
}

data "aws_ssm_parameter" "ca" {
  name = module.cloud.ca_parameter
}

module "site" {
  source = "../../modules/kubernetes"

  name             = "cairn-lab"
  namespace        = "cairn-lab"
  image            = var.image
  leaf_gateway_url = module.cloud.gateway_url
  leaf_config      = data.aws_ssm_parameter.leaf_config.value
  leaf_ca_pem      = nonsensitive(data.aws_ssm_parameter.ca.value) # a certificate, public by nature
  agent_token      = var.site_agent_token
  agent_pools = {
    gpu = {
      queue         = "lab-gpu"
      replicas      = var.site_gpu_agents
      cpu           = "8"
      memory        = "64Gi"
      gpus          = 1
      node_selector = { "nvidia.com/gpu.present" = "true" }
      tolerations   = [{ key = "nvidia.com/gpu" }]
    }
  }
}

output "gateway_url" {
  description = "Where Cairn answers; jobs for queue lab-gpu run at the site."
  value       = module.cloud.gateway_url
}

output "vpn_tunnels" {
  description = "The VPN tunnels' outside addresses, for the site router's configuration."
  value       = [aws_vpn_connection.lab.tunnel1_address, aws_vpn_connection.lab.tunnel2_address]
}
