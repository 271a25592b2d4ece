# A Cairn cluster on AWS: 3 NATS nodes, 2 service hosts, 2+ gateways behind HTTPS, a CPU and a
# GPU agent pool. Keep the state somewhere private and encrypted (an S3 backend with encrypt =
# true, for instance): it names every machine, though no secret (those live in SSM).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

module "cairn" {
  source = "../../modules/aws"

  name               = "cairn"
  cairn_package      = var.cairn_package
  availability_zones = var.availability_zones
  allowed_cidrs      = var.allowed_cidrs
  certificate_arn    = var.certificate_arn
  public_hostname    = var.public_hostname

  agent_pools = {
    cpu = { instance_type = "c6i.2xlarge", queue = "default", min_size = 0, max_size = 4, desired_capacity = 1 }
    gpu = { instance_type = "g5.2xlarge", queue = "gpu", min_size = 0, max_size = 2, desired_capacity = 1, gpus = 1 }
  }
  agent_token_parameter = var.agent_token_parameter
}

output "gateway_url" {
  description = "Where Cairn answers (after public_hostname's DNS record points at load_balancer_dns_name)."
  value       = module.cairn.gateway_url
}

output "load_balancer_dns_name" {
  description = "Point public_hostname's DNS record here."
  value       = module.cairn.load_balancer_dns_name
}

output "parameter_path" {
  description = "Where the cluster's secrets are kept in SSM Parameter Store."
  value       = module.cairn.parameter_path
}
