# The Cairn services and the gateway. The replicated services (local.replicated, metrics among
# them) and the gateway (each replica's projection has a durable consumer named after the
# replica) are StatefulSets, so a replica keeps its name, consumers and read model across
# restarts; a service that must run once (artifacts without artifacts_s3) is a Deployment of one
# pod with the Recreate strategy (two never overlap). Each pod copies
# its secrets (its NATS user, the CA, the service key) into a private in-memory folder at start:
# Cairn refuses credentials files that other users may read, and Secret volumes are group-readable.

locals {
  # name => how its pods run: port, role (its NATS user), stateful or not, replicas.
  workloads = merge(
    { for service in local.singletons : service => { port = local.service_ports[service], stateful = false, replicas = 1 } },
    { for service in local.replicated : service => { port = local.service_ports[service], stateful = true, replicas = var.service_replicas } },
    local.cluster_mode ? { gateway = { port = local.gateway_port, stateful = true, replicas = var.gateway.min } } : {},
  )
  workload_env = { for name, spec in local.workloads : name => merge(
    local.nats_env,
    { CAIRN_PORT = tostring(spec.port), CAIRN_NATS_CREDS = "/etc/cairn/nats/creds/${name}.json", HOME = "/tmp" },
    lookup(local.service_wiring, name, {}),
    name == "scheduler" ? { CAIRN_SCHEDULER_AGENT_NATS_CREDS = "/etc/cairn/nats/creds/agent.json", CAIRN_SCHEDULER_AGENT_NATS_URL = local.nats_urls } : {},
    name == "gateway" ? { CAIRN_SERVICES = local.gateway_services, CAIRN_GATEWAY_REPLICAS = tostring(var.gateway.min) } : {},
  ) }
  copy_secrets   = "cp -RL /secrets/. /etc/cairn/ && chmod -R go= /etc/cairn"
  s3_credentials = var.artifacts_s3 == null ? null : var.artifacts_s3.credentials_secret
}

resource "kubernetes_config_map_v1" "env" {
  for_each = local.workloads
  metadata {
    name      = "cairn-${each.key}-env"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = local.workload_env[each.key]
}

# A Service per workload; a headless one for StatefulSets, whose pods the gateway addresses
# one by one (registry-0.registry.<ns>.svc...).
resource "kubernetes_service_v1" "workload" {
  for_each = local.workloads
  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    cluster_ip = each.value.stateful && each.key != "gateway" ? "None" : null
    selector   = { "app.kubernetes.io/name" = each.key }
    port {
      name        = "http"
      port        = each.key == "gateway" ? 80 : each.value.port
      target_port = each.value.port
    }
  }
}

resource "kubernetes_service_v1" "gateway_pods" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "gateway-pods"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    cluster_ip = "None"
    selector   = { "app.kubernetes.io/name" = "gateway" }
    port {
      name        = "http"
      port        = local.gateway_port
      target_port = local.gateway_port
    }
  }
}

resource "kubernetes_persistent_volume_claim_v1" "data" {
  for_each = { for name, spec in local.workloads : name => spec if !spec.stateful }
  metadata {
    name      = "cairn-${each.key}-data"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = var.storage_class
    resources {
      requests = { storage = each.key == "artifacts" && var.artifacts_s3 == null ? "${var.artifacts_storage_gb}Gi" : "${var.data_storage_gb}Gi" }
    }
  }
  wait_until_bound = false
}

resource "kubernetes_deployment_v1" "singleton" {
  #checkov:skip=CKV_K8S_14:the image comes from var.image, whose validation refuses latest and a missing tag
  #checkov:skip=CKV_K8S_43:a pinned tag is accepted as well as a digest (var.image validation); pin a digest for immutable deploys
  #checkov:skip=CKV_K8S_35:only the artifacts service with artifacts_s3.credentials_secret gets its S3 keys as environment variables, the one way its settings read them
  for_each = { for name, spec in local.workloads : name => spec if !spec.stateful }
  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = each.key })
  }
  spec {
    replicas = 1
    selector {
      match_labels = { "app.kubernetes.io/name" = each.key }
    }
    strategy {
      type = "Recreate" # runs once: the old pod stops before the new one starts
    }
    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = each.key, "cairn/tier" = "services" })
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
        init_container {
          name              = "secrets"
          image             = var.image
          image_pull_policy = "Always"
          command           = ["/bin/sh", "-c", local.copy_secrets]
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }
          resources {
            requests = { cpu = "50m", memory = "32Mi" }
            limits   = { cpu = "200m", memory = "64Mi" }
          }
          volume_mount {
            name       = "secrets"
            mount_path = "/secrets"
            read_only  = true
          }
          volume_mount {
            name       = "private"
            mount_path = "/etc/cairn"
          }
        }
        container {
          name              = each.key
          image             = var.image
          image_pull_policy = "Always"
          command           = ["python", "-m", "cairn.services.${each.key}"]
          env_from {
            config_map_ref {
              name = kubernetes_config_map_v1.env[each.key].metadata[0].name
            }
          }
          dynamic "env" {
            for_each = each.key == "artifacts" && local.s3_credentials != null ? { CAIRN_ARTIFACTS_S3_ACCESS_KEY = "access_key", CAIRN_ARTIFACTS_S3_SECRET_KEY = "secret_key" } : {}
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = local.s3_credentials
                  key  = env.value
                }
              }
            }
          }
          port {
            name           = "http"
            container_port = each.value.port
          }
          resources {
            requests = { cpu = var.resources.cpu_request, memory = var.resources.memory_request }
            limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
          }
          readiness_probe {
            http_get {
              path = "/healthz"
              port = each.value.port
            }
            period_seconds = 5
          }
          liveness_probe {
            tcp_socket {
              port = each.value.port
            }
            initial_delay_seconds = 60
            period_seconds        = 15
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
            name       = "private"
            mount_path = "/etc/cairn"
            read_only  = true
          }
          volume_mount {
            name       = "data"
            mount_path = "/var/lib/cairn"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
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
              }
            }
            sources {
              secret {
                name = kubernetes_secret_v1.service_key[0].metadata[0].name
                items {
                  key  = "service.key"
                  path = "secrets/service.key"
                }
              }
            }
            sources {
              secret {
                name = kubernetes_secret_v1.nats_creds[0].metadata[0].name
                dynamic "items" {
                  for_each = each.key == "scheduler" ? [each.key, "agent"] : [each.key]
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
          name = "private"
          empty_dir {
            medium = "Memory"
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
        volume {
          name = "data"
          persistent_volume_claim {
            claim_name = kubernetes_persistent_volume_claim_v1.data[each.key].metadata[0].name
          }
        }
      }
    }
  }
}
