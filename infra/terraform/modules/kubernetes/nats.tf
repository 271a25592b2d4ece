# NATS as a StatefulSet: nats-0..N-1, each with a JetStream volume of its own, routes to the
# others through the headless Service `nats` (stable names: nats-0.nats.<ns>.svc...). An init
# container writes the node's config with `cairn cluster config` (the same files as on machines
# of the hosts module: JetStream with sync_interval: always, TLS on every listener, the routes,
# Cairn's per-role users), then listens on every address instead of the pod's name.

locals {
  nats_config_script = join(" && ", concat(
    ["cp -RL /secrets/. /etc/cairn/", "chmod -R go= /etc/cairn"],
    # Every node's certificate is the shared one (cairn cluster config expects NODE.pem per node).
    [for node in local.nats_nodes : "cp /etc/cairn/tls/nats.pem /etc/cairn/tls/${node.name}.pem && cp /etc/cairn/tls/nats-key.pem /etc/cairn/tls/${node.name}-key.pem"],
    [join(" ", concat(["cairn --json cluster config --out /etc/cairn/nats --name ${var.name} --tls-dir /etc/cairn/tls --replicas ${local.replicas} --store-dir /data"],
      [for node in local.nats_nodes : "--node ${node.name}=${node.host}:${local.nats_client_port}:${local.nats_cluster_port}:${local.nats_leaf_port}"],
    [">/dev/null"]))],
    ["sed -i -E 's/^( *)listen: \"[^\"]*:([0-9]+)\"$/\\1listen: \"0.0.0.0:\\2\"/' /etc/cairn/nats/nodes/*.conf"],
  ))
}

resource "kubernetes_service_v1" "nats" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "nats"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    cluster_ip                  = "None"
    publish_not_ready_addresses = true # routes must resolve while the cluster forms
    selector                    = { "app.kubernetes.io/name" = "nats" }
    port {
      name        = "client"
      port        = local.nats_client_port
      target_port = local.nats_client_port
    }
    port {
      name        = "cluster"
      port        = local.nats_cluster_port
      target_port = local.nats_cluster_port
    }
    port {
      name        = "leafnodes"
      port        = local.nats_leaf_port
      target_port = local.nats_leaf_port
    }
  }
}

resource "kubernetes_stateful_set_v1" "nats" {
  #checkov:skip=CKV_K8S_14:the image comes from var.image, whose validation refuses latest and a missing tag
  #checkov:skip=CKV_K8S_43:a pinned tag is accepted as well as a digest (var.image validation); pin a digest for immutable deploys
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "nats"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = "nats" })
  }
  spec {
    service_name          = kubernetes_service_v1.nats[0].metadata[0].name
    replicas              = var.nats_replicas
    pod_management_policy = "Parallel" # all nodes start at once: the cluster needs a majority to form
    selector {
      match_labels = { "app.kubernetes.io/name" = "nats" }
    }
    update_strategy {
      type = "RollingUpdate" # one node at a time: a majority stays up
    }
    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = "nats" })
      }
      spec {
        automount_service_account_token  = false
        termination_grace_period_seconds = 60
        security_context {
          run_as_non_root = true
          run_as_user     = local.pod_user
          run_as_group    = local.pod_user
          fs_group        = local.pod_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        init_container {
          name              = "config"
          image             = var.image
          image_pull_policy = "Always"
          command           = ["/bin/sh", "-c", local.nats_config_script]
          env {
            name  = "HOME"
            value = "/tmp"
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }
          resources {
            requests = { cpu = "100m", memory = "128Mi" }
            limits   = { cpu = "1", memory = "512Mi" }
          }
          volume_mount {
            name       = "secrets"
            mount_path = "/secrets"
            read_only  = true
          }
          volume_mount {
            name       = "config"
            mount_path = "/etc/cairn"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }
        container {
          name              = "nats"
          image             = var.nats_image
          image_pull_policy = "Always"
          # The config keeps the ports file in the node's store folder: nats-server does not make it.
          command = ["/bin/sh", "-c", "mkdir -p /data/$${POD_NAME} && exec nats-server -c /etc/cairn/nats/nodes/$${POD_NAME}.conf"]
          env {
            name = "POD_NAME"
            value_from {
              field_ref {
                field_path = "metadata.name"
              }
            }
          }
          port {
            name           = "client"
            container_port = local.nats_client_port
          }
          port {
            name           = "cluster"
            container_port = local.nats_cluster_port
          }
          port {
            name           = "leafnodes"
            container_port = local.nats_leaf_port
          }
          resources {
            requests = { cpu = var.resources.cpu_request, memory = var.resources.memory_request }
            limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
          }
          readiness_probe {
            tcp_socket {
              port = local.nats_client_port
            }
            period_seconds = 5
          }
          liveness_probe {
            tcp_socket {
              port = local.nats_client_port
            }
            initial_delay_seconds = 30
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
          volume_mount {
            name       = "config"
            mount_path = "/etc/cairn"
            read_only  = true
          }
          volume_mount {
            name       = "data"
            mount_path = "/data"
          }
        }
        volume {
          name = "secrets"
          projected {
            default_mode = "0440"
            sources {
              secret {
                name = kubernetes_secret_v1.nats_tls[0].metadata[0].name
                items {
                  key  = "ca.pem"
                  path = "tls/ca.pem"
                }
                items {
                  key  = "nats.pem"
                  path = "tls/nats.pem"
                }
                items {
                  key  = "nats-key.pem"
                  path = "tls/nats-key.pem"
                }
              }
            }
            sources {
              secret {
                name = kubernetes_secret_v1.nats_creds[0].metadata[0].name
                dynamic "items" {
                  for_each = local.nats_roles
                  content {
                    key  = "${items.value}.json"
                    path = "nats/creds/${items.value}.json"
                  }
                }
              }
            }
          }
        }
        volume {
          name = "config"
          empty_dir {}
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
      }
    }
    volume_claim_template {
      metadata {
        name   = "data"
        labels = local.labels
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class
        resources {
          requests = { storage = "${var.nats_storage_gb}Gi" }
        }
      }
    }
  }
}
