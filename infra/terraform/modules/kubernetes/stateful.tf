# The replicated services (local.replicated: metrics among them) and the gateways: StatefulSets
# (see services.tf for why), each replica with CAIRN_REPLICA = its pod name and a volume of its own
# (read model; metrics: its Parquet points). The gateways are scaled by a HorizontalPodAutoscaler
# and reached through the Ingress. The pods roll when their environment changes (the annotation):
# the gateways' CAIRN_SERVICES and the metrics pods' CAIRN_WRITER_REPLICAS name every replica.

resource "kubernetes_stateful_set_v1" "replicated" {
  #checkov:skip=CKV_K8S_14:the image comes from var.image, whose validation refuses latest and a missing tag
  #checkov:skip=CKV_K8S_43:a pinned tag is accepted as well as a digest (var.image validation); pin a digest for immutable deploys
  #checkov:skip=CKV_K8S_35:only artifacts replicas with artifacts_s3.credentials_secret get their S3 keys as environment variables, the one way its settings read them
  for_each = { for name, spec in local.workloads : name => spec if spec.stateful }
  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = each.key })
  }
  spec {
    service_name          = each.key == "gateway" ? kubernetes_service_v1.gateway_pods[0].metadata[0].name : kubernetes_service_v1.workload[each.key].metadata[0].name
    replicas              = each.value.replicas
    pod_management_policy = "Parallel"
    selector {
      match_labels = { "app.kubernetes.io/name" = each.key }
    }
    update_strategy {
      type = "RollingUpdate" # one replica at a time; the gateway moves requests to the others
    }
    template {
      metadata {
        labels      = merge(local.labels, { "app.kubernetes.io/name" = each.key, "cairn/tier" = each.key == "gateway" ? "gateway" : "services" })
        annotations = { "cairn/env-sha256" = sha256(jsonencode(local.workload_env[each.key])) }
      }
      spec {
        automount_service_account_token  = false
        termination_grace_period_seconds = 30
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
          env {
            name = "CAIRN_REPLICA"
            value_from {
              field_ref {
                field_path = "metadata.name"
              }
            }
          }
          dynamic "env" { # artifacts replicas over S3: their keys, as the Deployment gives them (services.tf)
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
                # the scheduler also hands agents their credentials (CAIRN_SCHEDULER_AGENT_NATS_CREDS)
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
          requests = { storage = "${var.data_storage_gb}Gi" }
        }
      }
    }
  }

  lifecycle {
    # The autoscaler owns the gateways' count.
    ignore_changes = [spec[0].replicas]
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "gateway" {
  count = local.cluster_mode ? 1 : 0
  metadata {
    name      = "gateway"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    min_replicas = var.gateway.min
    max_replicas = var.gateway.max
    scale_target_ref {
      api_version = "apps/v1"
      kind        = "StatefulSet"
      name        = kubernetes_stateful_set_v1.replicated["gateway"].metadata[0].name
    }
    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = var.gateway.cpu_target
        }
      }
    }
  }
}

resource "kubernetes_ingress_v1" "gateway" {
  count = local.cluster_mode && var.ingress != null ? 1 : 0
  metadata {
    name      = "cairn"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
    # Event streams stay open for an hour and are not buffered; bodies stream through (the
    # gateway bounds them per route): the settings of docs/cluster/nginx.conf, for ingress-nginx.
    annotations = merge({
      "nginx.ingress.kubernetes.io/proxy-read-timeout"      = "3600"
      "nginx.ingress.kubernetes.io/proxy-buffering"         = "off"
      "nginx.ingress.kubernetes.io/proxy-request-buffering" = "off"
      "nginx.ingress.kubernetes.io/proxy-body-size"         = "0"
    }, var.ingress.annotations)
  }
  spec {
    ingress_class_name = var.ingress.class_name
    dynamic "tls" {
      for_each = var.ingress.tls_secret == null ? [] : [var.ingress.tls_secret]
      content {
        hosts       = [var.ingress.host]
        secret_name = tls.value
      }
    }
    rule {
      host = var.ingress.host
      http {
        path {
          path      = "/"
          path_type = "Prefix"
          backend {
            service {
              name = kubernetes_service_v1.workload["gateway"].metadata[0].name
              port {
                number = 80
              }
            }
          }
        }
      }
    }
  }
}
