# The cluster's secrets, as `cairn cluster certs` and `cairn cluster config` would make them:
# an ECDSA P-256 CA, a certificate for the NATS servers (all their pod names: the StatefulSet
# mounts one Secret), a password per NATS user, the site's service key. They are in the
# Terraform state too: keep the state encrypted and private.

resource "tls_private_key" "ca" {
  count       = local.cluster_mode ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  count                 = local.cluster_mode ? 1 : 0
  private_key_pem       = tls_private_key.ca[0].private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 365 * 10
  allowed_uses          = ["cert_signing", "crl_signing"]
  subject {
    common_name  = "${var.name} NATS CA"
    organization = "Cairn"
  }
}

resource "tls_private_key" "nats" {
  count       = local.cluster_mode ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "nats" {
  count           = local.cluster_mode ? 1 : 0
  private_key_pem = tls_private_key.nats[0].private_key_pem
  dns_names = concat([for node in local.nats_nodes : node.host], [
    "nats.${local.ns}.svc.${var.cluster_domain}", "nats-client.${local.ns}.svc.${var.cluster_domain}",
  ])
  subject {
    common_name  = "nats.${local.ns}"
    organization = "Cairn"
  }
}

resource "tls_locally_signed_cert" "nats" {
  count                 = local.cluster_mode ? 1 : 0
  cert_request_pem      = tls_cert_request.nats[0].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca[0].cert_pem
  validity_period_hours = 24 * 365 * 2
  early_renewal_hours   = 24 * 30
  allowed_uses          = ["digital_signature", "key_agreement", "server_auth", "client_auth"]
}

resource "random_password" "nats" {
  for_each = local.cluster_mode ? toset(local.nats_roles) : toset([])
  length   = 40
  special  = false
}

# <data dir>/secrets/service.key: 32 bytes as hex, shared by every service and gateway process.
resource "random_id" "service_key" {
  count       = local.cluster_mode ? 1 : 0
  byte_length = 32
}

resource "kubernetes_secret_v1" "nats_tls" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "cairn-nats-tls"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = {
    "ca.pem"       = tls_self_signed_cert.ca[0].cert_pem
    "nats.pem"     = tls_locally_signed_cert.nats[0].cert_pem
    "nats-key.pem" = tls_private_key.nats[0].private_key_pem
  }
}

resource "kubernetes_secret_v1" "nats_creds" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "cairn-nats-creds"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { for role, password in random_password.nats : "${role}.json" => jsonencode({ user = role, password = password.result }) }
}

resource "kubernetes_secret_v1" "service_key" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "cairn-service-key"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { "service.key" = random_id.service_key[0].hex }
}

resource "kubernetes_secret_v1" "agent_token" {
  metadata {
    name      = "cairn-agent-token"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { "CAIRN_TOKEN" = var.agent_token }
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name   = var.namespace
    labels = merge(local.labels, { "pod-security.kubernetes.io/enforce" = "restricted" })
  }
}
