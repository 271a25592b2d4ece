# Inside the namespace, each tier accepts only its callers (the network half of "services listen
# on a private network"): nothing reaches a pod that no rule names.

resource "kubernetes_network_policy_v1" "default_deny" {
  metadata {
    name      = "default-deny-ingress"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {}
    policy_types = ["Ingress"]
  }
}

# Gateways: from anywhere (the ingress controller lives in another namespace).
resource "kubernetes_network_policy_v1" "gateway" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "gateway-from-anywhere"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "cairn/tier" = "gateway" }
    }
    policy_types = ["Ingress"]
    ingress {
      ports {
        port     = tostring(local.gateway_port)
        protocol = "TCP"
      }
    }
  }
}

# Services: from the gateways and from each other.
resource "kubernetes_network_policy_v1" "services" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "services-from-gateway-and-services"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "cairn/tier" = "services" }
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "cairn/tier" = "gateway" }
        }
      }
      from {
        pod_selector {
          match_labels = { "cairn/tier" = "services" }
        }
      }
    }
  }
}

# NATS: clients from every Cairn pod of the namespace, routes from the other NATS pods, and the
# leaf port from anywhere (leaf sites; they authenticate as the agent user over TLS).
resource "kubernetes_network_policy_v1" "nats" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "nats"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "nats" }
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/part-of" = "cairn" }
        }
      }
      ports {
        port     = tostring(local.nats_client_port)
        protocol = "TCP"
      }
      ports {
        port     = tostring(local.nats_cluster_port)
        protocol = "TCP"
      }
    }
    ingress {
      ports {
        port     = tostring(local.nats_leaf_port)
        protocol = "TCP"
      }
    }
  }
}

# Agents: from each other (multi-node jobs' rendezvous); a leaf site's server: from its agents.
resource "kubernetes_network_policy_v1" "agents" {
  metadata {
    name      = "agents"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "cairn/tier" = "agents" }
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "cairn/tier" = "agents" }
        }
      }
    }
  }
}

resource "kubernetes_network_policy_v1" "leaf" {
  count = local.cluster_mode ? 0 : 1
  metadata {
    name      = "nats-leaf-from-agents"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "nats-leaf" }
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "cairn/tier" = "agents" }
        }
      }
      ports {
        port     = "4222"
        protocol = "TCP"
      }
    }
  }
}
