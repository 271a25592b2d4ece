output "namespace" {
  description = "The namespace Cairn runs in."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "gateway_url" {
  description = "Where users reach Cairn: the Ingress's host (https with ingress.tls_secret), or the in-cluster gateway Service without an Ingress; in leaf mode, the cluster's gateway the agents use."
  value = !local.cluster_mode ? var.leaf_gateway_url : (var.ingress == null ? "http://gateway.${local.ns}.svc.${var.cluster_domain}" :
  "${var.ingress.tls_secret == null ? "http" : "https"}://${var.ingress.host}")
}

output "nats_urls" {
  description = "CAIRN_NATS_URL inside the cluster (every NATS pod, TLS); empty in leaf mode."
  value       = local.cluster_mode ? local.nats_urls : ""
}

output "nats_leaf_endpoints" {
  description = "Each NATS pod's leaf address inside the cluster (expose the `nats` pods' port 7422 to leaf sites, e.g. with a LoadBalancer Service per pod); empty in leaf mode."
  value       = local.cluster_mode ? [for node in local.nats_nodes : "${node.host}:${local.nats_leaf_port}"] : []
}

output "ca_pem" {
  description = "The NATS cluster's CA certificate (leaf sites verify the servers with it); null in leaf mode."
  value       = local.cluster_mode ? tls_self_signed_cert.ca[0].cert_pem : null
}

output "agent_nats_password" {
  description = "The NATS agent user's password (a leaf site's server connects as this user); null in leaf mode."
  value       = local.cluster_mode ? random_password.nats["agent"].result : null
  sensitive   = true
}

output "services" {
  description = "The gateway's CAIRN_SERVICES: each service's URL, or its replicas' URLs; empty in leaf mode."
  value       = local.cluster_mode ? local.gateway_services : ""
}

output "agent_pools" {
  description = "The agent pools' Deployments (scaled to 0 until agent_token is set)."
  value       = { for pool_name, deployment in kubernetes_deployment_v1.agents : pool_name => deployment.metadata[0].name }
}
