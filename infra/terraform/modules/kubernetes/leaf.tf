# Leaf mode (var.leaf_gateway_url set): this namespace is a remote site of a cluster elsewhere. One
# nats-server with the config the cluster made for this site (`cairn cluster config --site`:
# it dials the cluster's leaf ports as the agent user over TLS, and lets the site's agents connect
# locally with that user), and the agent pools. Assignments, reports, heartbeats and job logs
# cross the leaf connection; nothing else does (docs/cluster.md).

resource "kubernetes_secret_v1" "leaf" {
  count = local.cluster_mode ? 0 : 1
  metadata {
    name      = "cairn-nats-leaf"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = {
    "leaf.conf" = var.leaf_config
    "ca.pem"    = var.leaf_ca_pem
  }
}

resource "kubernetes_service_v1" "leaf" {
  count = local.cluster_mode ? 0 : 1
  metadata {
    name      = "nats-leaf"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    selector = { "app.kubernetes.io/name" = "nats-leaf" }
    port {
      name        = "client"
      port        = 4222
      target_port = 4222
    }
  }
}

resource "kubernetes_deployment_v1" "leaf" {
  #checkov:skip=CKV_K8S_43:a pinned tag is accepted as well as a digest (var.nats_image validation); pin a digest for immutable deploys
  count = local.cluster_mode ? 0 : 1
  metadata {
    name      = "nats-leaf"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = "nats-leaf" })
  }
  spec {
    replicas = 1
    selector {
      match_labels = { "app.kubernetes.io/name" = "nats-leaf" }
    }
    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = "nats-leaf", "cairn/tier" = "nats" })
      }
      spec {
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = local.pod_user
          run_as_group    = local.pod_user
          fs_group        = local.pod_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "nats"
          image             = var.nats_image
          image_pull_policy = "Always"
          # The config keeps its ports file in a folder of the machine that made it: make it here.
          command = ["/bin/sh", "-c", "mkdir -p \"$(sed -n 's/^ports_file_dir: \"\\(.*\\)\"$/\\1/p' /etc/cairn/nats/leaf.conf)\" && exec nats-server -c /etc/cairn/nats/leaf.conf"]
          port {
            name           = "client"
            container_port = 4222
          }
          resources {
            requests = { cpu = var.resources.cpu_request, memory = var.resources.memory_request }
            limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
          }
          readiness_probe {
            tcp_socket {
              port = 4222
            }
            period_seconds = 5
          }
          liveness_probe {
            tcp_socket {
              port = 4222
            }
            initial_delay_seconds = 15
            period_seconds        = 10
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }
          # The config names the CA at /etc/cairn/tls/ca.pem and keeps its ports file under
          # /var/lib/cairn/nats (the paths of the machines that made it).
          volume_mount {
            name       = "leaf"
            mount_path = "/etc/cairn/nats/leaf.conf"
            sub_path   = "leaf.conf"
            read_only  = true
          }
          volume_mount {
            name       = "leaf"
            mount_path = "/etc/cairn/tls/ca.pem"
            sub_path   = "ca.pem"
            read_only  = true
          }
          volume_mount {
            name       = "state"
            mount_path = "/var/lib/cairn"
          }
        }
        volume {
          name = "leaf"
          secret {
            secret_name  = kubernetes_secret_v1.leaf[0].metadata[0].name
            default_mode = "0440"
          }
        }
        volume {
          name = "state"
          empty_dir {}
        }
      }
    }
  }
}
