# A Cairn cluster on Kubernetes: 3 NATS pods, 2 replicas of registry and lineage, 2 to 6
# gateways behind an ingress-nginx Ingress, a GPU agent pool. The state holds the cluster's
# secrets (CA key, NATS passwords, service key): keep it private and encrypted.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.25, < 3.0"
    }
  }
}

provider "kubernetes" {
  config_path    = var.kubeconfig
  config_context = var.kube_context
}

module "cairn" {
  source = "../../modules/kubernetes"

  name      = "cairn"
  namespace = "cairn"
  image     = var.image
  ingress = {
    host       = var.host
    tls_secret = var.tls_secret
  }
  agent_token = var.agent_token
  agent_pools = {
    cpu = { queue = "default", replicas = 2, cpu = "4", memory = "16Gi" }
    gpu = {
      queue         = "gpu"
      replicas      = 1
      cpu           = "8"
      memory        = "64Gi"
      gpus          = 1
      node_selector = { "nvidia.com/gpu.present" = "true" }
      tolerations   = [{ key = "nvidia.com/gpu" }]
    }
  }
}

output "gateway_url" {
  description = "Where Cairn answers."
  value       = module.cairn.gateway_url
}
