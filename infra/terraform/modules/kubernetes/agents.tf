# Agent pools: a Deployment each (agents keep no state: a job's folder is scratch space), taking
# jobs from one queue; GPU pools request nvidia.com/gpu (the NVIDIA device plugin gives each pod
# its GPUs) and say how many to `cairn agent --gpus`. Agents reach the gateway (CAIRN_URL) and
# NATS (the cluster over TLS, or the leaf site's server), and get their NATS user from the
# scheduler. With no agent_token the pools have no pods yet (their count, not their existence,
# depends on the token: Terraform lets no for_each depend on a secret).

locals {
  agent_env = local.cluster_mode ? {
    CAIRN_URL            = "http://gateway.${local.ns}.svc.${var.cluster_domain}"
    CAIRN_AGENT_NATS_URL = local.nats_urls
    CAIRN_NATS_TLS_CA    = "/etc/cairn/tls/ca.pem"
    HOME                 = "/tmp"
    } : {
    CAIRN_URL            = var.leaf_gateway_url
    CAIRN_AGENT_NATS_URL = "nats://nats-leaf.${local.ns}.svc.${var.cluster_domain}:4222"
    HOME                 = "/tmp"
  }
}

resource "kubernetes_deployment_v1" "agents" {
  #checkov:skip=CKV_K8S_14:the image comes from var.image, whose validation refuses latest and a missing tag
  #checkov:skip=CKV_K8S_43:a pinned tag is accepted as well as a digest (var.image validation); pin a digest for immutable deploys
  #checkov:skip=CKV_K8S_35:cairn agent reads its token from CAIRN_TOKEN or --token only; a file would end up in its environment the same way
  for_each = var.agent_pools
  metadata {
    name      = "agents-${each.key}"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = "agents-${each.key}" })
  }
  spec {
    replicas = var.agent_token == "" ? 0 : each.value.replicas
    selector {
      match_labels = { "app.kubernetes.io/name" = "agents-${each.key}" }
    }
    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = "agents-${each.key}", "cairn/tier" = "agents", "cairn/queue" = each.value.queue })
      }
      spec {
        automount_service_account_token = false
        # A running job gets time to stop (the agent's --grace, then its own exit).
        termination_grace_period_seconds = 60
        node_selector                    = each.value.node_selector
        security_context {
          run_as_non_root = true
          run_as_user     = local.pod_user
          run_as_group    = local.pod_user
          fs_group        = local.pod_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        dynamic "toleration" {
          for_each = each.value.tolerations
          content {
            key      = toleration.value.key
            operator = toleration.value.operator
            value    = toleration.value.value
            effect   = toleration.value.effect
          }
        }
        container {
          name              = "agent"
          image             = var.image
          image_pull_policy = "Always"
          command = concat(["/bin/sh", "-c", join(" ", concat(
            ["exec cairn agent --queue ${each.value.queue} --name $${POD_NAME} --host $${POD_IP} --work-dir /work"],
            each.value.gpus > 0 ? ["--gpus ${each.value.gpus}"] : [],
          ))])
          dynamic "env" {
            for_each = local.agent_env
            content {
              name  = env.key
              value = env.value
            }
          }
          env {
            name = "POD_NAME"
            value_from {
              field_ref {
                field_path = "metadata.name"
              }
            }
          }
          env {
            name = "POD_IP"
            value_from {
              field_ref {
                field_path = "status.podIP"
              }
            }
          }
          env_from {
            secret_ref {
              name = kubernetes_secret_v1.agent_token.metadata[0].name
            }
          }
          resources {
            # nvidia.com/gpu 0 on CPU pools: no GPU, and no device plugin needed.
            requests = { cpu = each.value.cpu, memory = each.value.memory, "nvidia.com/gpu" = tostring(each.value.gpus) }
            limits   = { cpu = each.value.cpu, memory = each.value.memory, "nvidia.com/gpu" = tostring(each.value.gpus) }
          }
          # An agent has no port: alive while its process is (it exits on a lost scheduler).
          liveness_probe {
            exec {
              command = ["/bin/sh", "-c", "kill -0 1"]
            }
            period_seconds = 30
          }
          readiness_probe {
            exec {
              command = ["/bin/sh", "-c", "kill -0 1"]
            }
            period_seconds = 30
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
            name       = "work"
            mount_path = "/work"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          dynamic "volume_mount" {
            for_each = local.cluster_mode ? [1] : []
            content {
              name       = "ca"
              mount_path = "/etc/cairn/tls"
              read_only  = true
            }
          }
        }
        volume {
          name = "work"
          empty_dir {}
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
        dynamic "volume" {
          for_each = local.cluster_mode ? [1] : []
          content {
            name = "ca"
            secret {
              secret_name = kubernetes_secret_v1.nats_tls[0].metadata[0].name
              items {
                key  = "ca.pem"
                path = "ca.pem"
              }
            }
          }
        }
      }
    }
  }
}
