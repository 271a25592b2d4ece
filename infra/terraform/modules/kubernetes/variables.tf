variable "name" {
  description = "Name of this Cairn installation: the NATS cluster's name and a label on every object."
  type        = string
  default     = "cairn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3 to 32 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "namespace" {
  description = "Namespace made for Cairn (every object of this module goes in it)."
  type        = string
  default     = "cairn"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace)) && !contains(["default", "kube-system", "kube-public"], var.namespace)
    error_message = "namespace must be a DNS label (lowercase letters, digits, '-') and not default, kube-system or kube-public."
  }
}

variable "image" {
  description = "The Cairn image (Python with `pip install cairn`, which brings the nats-server binary and the `cairn` CLI; a POSIX shell and coreutils): every service, gateway, agent and the NATS pods' config step run it. Pin a version or a digest."
  type        = string

  validation {
    condition     = can(regex("^[^:@ ]+(:[A-Za-z0-9_.-]+)?(@sha256:[0-9a-f]{64})?$", var.image)) && (can(regex("@sha256:", var.image)) || (can(regex(":[A-Za-z0-9_.-]+$", var.image)) && !can(regex(":latest$", var.image))))
    error_message = "image must name a tag other than latest (registry/cairn:0.9.0) or a digest (registry/cairn@sha256:...)."
  }
}

variable "nats_image" {
  description = "The nats-server image of the NATS StatefulSet and a leaf site's server."
  type        = string
  default     = "nats:2.10.22-alpine"

  validation {
    condition     = can(regex("^[^ ]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.nats_image)) && !can(regex(":latest$", var.nats_image))
    error_message = "nats_image must name a tag other than latest, or a digest."
  }
}

variable "cluster_domain" {
  description = "The Kubernetes cluster's DNS domain (the NATS pods' names and certificates are under it)."
  type        = string
  default     = "cluster.local"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.cluster_domain))
    error_message = "cluster_domain must be a DNS name such as cluster.local."
  }
}

variable "storage_class" {
  description = "Storage class of every PersistentVolumeClaim (JetStream files, read models, artifacts). Null: the cluster's default class."
  type        = string
  default     = null

  validation {
    condition     = var.storage_class == null || can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.storage_class))
    error_message = "storage_class must be null or a storage class name."
  }
}

variable "nats_replicas" {
  description = "NATS servers in the JetStream cluster StatefulSet (3 or 5). Ignored when leaf is set."
  type        = number
  default     = 3

  validation {
    condition     = contains([3, 5], var.nats_replicas)
    error_message = "nats_replicas must be 3 or 5 (a write needs a majority)."
  }
}

variable "nats_storage_gb" {
  description = "Size of each NATS server's JetStream volume (GiB)."
  type        = number
  default     = 50

  validation {
    condition     = var.nats_storage_gb >= 1
    error_message = "nats_storage_gb must be at least 1."
  }
}

variable "service_replicas" {
  description = "Replicas of the services (registry, lineage, scheduler, deployments, monitor, pipelines, metrics; artifacts too with artifacts_s3, else it runs once), each a StatefulSet pod with a volume of its own (read model; metrics: its own Parquet points, CAIRN_WRITER_REPLICAS naming every metrics pod)."
  type        = number
  default     = 2

  validation {
    condition     = var.service_replicas >= 1 && var.service_replicas <= 9
    error_message = "service_replicas must be between 1 and 9."
  }
}

variable "data_storage_gb" {
  description = "Size of each service's and gateway's read-model volume (GiB)."
  type        = number
  default     = 20

  validation {
    condition     = var.data_storage_gb >= 1
    error_message = "data_storage_gb must be at least 1."
  }
}

variable "artifacts_storage_gb" {
  description = "Size of the artifacts service's blob volume (GiB) when artifacts_s3 is null."
  type        = number
  default     = 200

  validation {
    condition     = var.artifacts_storage_gb >= 1
    error_message = "artifacts_storage_gb must be at least 1."
  }
}

variable "artifacts_s3" {
  description = "Keep artifact blobs in S3 (or any S3-compatible store) instead of a volume: bucket, region, endpoint (null: AWS) and the name of a Secret in the namespace with keys access_key and secret_key (null: the pod's own cloud identity, e.g. IRSA)."
  type = object({
    bucket             = string
    region             = optional(string, "us-east-1")
    endpoint           = optional(string)
    credentials_secret = optional(string)
  })
  default = null

  validation {
    condition     = var.artifacts_s3 == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.artifacts_s3.bucket))
    error_message = "artifacts_s3.bucket must be an S3 bucket name."
  }
}

variable "gateway" {
  description = "Gateway replicas (a StatefulSet scaled by a HorizontalPodAutoscaler between min and max at a CPU utilization target, in percent). Each enforces 1/min of every rate limit (CAIRN_GATEWAY_REPLICAS)."
  type = object({
    min        = number
    max        = number
    cpu_target = optional(number, 70)
  })
  default = { min = 2, max = 6 }

  validation {
    condition     = var.gateway.min >= 1 && var.gateway.min <= var.gateway.max && var.gateway.cpu_target > 0 && var.gateway.cpu_target <= 100
    error_message = "gateway: need 1 <= min <= max and 0 < cpu_target <= 100."
  }
}

variable "ingress" {
  description = "The Ingress in front of the gateways: its host name, ingress class, the Secret holding its TLS certificate (null: no TLS at the Ingress; only behind something that terminates it) and extra annotations. Null: no Ingress (reach the `gateway` Service your own way)."
  type = object({
    host        = string
    class_name  = optional(string, "nginx")
    tls_secret  = optional(string)
    annotations = optional(map(string), {})
  })
  default = null

  validation {
    condition     = var.ingress == null || can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.ingress.host))
    error_message = "ingress.host must be a DNS name (no scheme, no port)."
  }
}

variable "agent_pools" {
  description = "Agent pools, a Deployment each, taking jobs from one queue. gpus > 0 requests that many nvidia.com/gpu per agent pod (and passes --gpus); node_selector and tolerations place pods on GPU nodes."
  type = map(object({
    queue         = string
    replicas      = number
    cpu           = optional(string, "4")
    memory        = optional(string, "16Gi")
    gpus          = optional(number, 0)
    node_selector = optional(map(string), {})
    tolerations = optional(list(object({
      key      = string
      operator = optional(string, "Exists")
      value    = optional(string)
      effect   = optional(string, "NoSchedule")
    })), [])
  }))
  default = {}

  validation {
    condition = alltrue([for pool_name, pool in var.agent_pools :
      can(regex("^[a-z][a-z0-9-]{0,30}$", pool_name)) && can(regex("^[A-Za-z0-9_.-]+$", pool.queue)) &&
    pool.replicas >= 0 && pool.gpus >= 0 && pool.gpus <= 16])
    error_message = "agent_pools: names of lowercase letters, digits and '-'; a queue name; replicas >= 0; 0 <= gpus <= 16."
  }
}

variable "agent_token" {
  description = "The token agents use (a service account's, made after the first apply: see the README). Empty: the agent pools have no pods yet."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = !can(regex("\\s", var.agent_token))
    error_message = "agent_token must not contain white space."
  }
}

variable "leaf_gateway_url" {
  description = "Run as a leaf site of a Cairn cluster elsewhere instead of a cluster: the cluster's gateway URL, which this site's agents use. Set, the module deploys only a leaf nats-server (leaf_config, leaf_ca_pem) and the agent pools. Empty: a whole Cairn cluster here."
  type        = string
  default     = ""

  validation {
    condition     = var.leaf_gateway_url == "" || can(regex("^https?://", var.leaf_gateway_url))
    error_message = "leaf_gateway_url must be empty or an http(s) URL."
  }
}

variable "leaf_config" {
  description = "Leaf mode: the nats-server config the cluster made for this site (`cairn cluster config --site NAME=0.0.0.0:4222`, e.g. the aws module's SSM parameter /<name>/leaf/<site>.conf). It holds the agent user's password."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.leaf_config == "" || can(regex("leafnodes", var.leaf_config))
    error_message = "leaf_config must be empty or a leaf nats-server config (with a leafnodes block)."
  }
}

variable "leaf_ca_pem" {
  description = "Leaf mode: the cluster's CA certificate (PEM), which the leaf server verifies the cluster's nodes with."
  type        = string
  default     = ""

  validation {
    condition     = var.leaf_ca_pem == "" || can(regex("BEGIN CERTIFICATE", var.leaf_ca_pem))
    error_message = "leaf_ca_pem must be empty or a PEM certificate."
  }
}

variable "resources" {
  description = "CPU and memory requests and limits of each service, gateway and NATS container."
  type = object({
    cpu_request    = string
    memory_request = string
    cpu_limit      = string
    memory_limit   = string
  })
  default = { cpu_request = "250m", memory_request = "512Mi", cpu_limit = "2", memory_limit = "2Gi" }

  validation {
    condition     = alltrue([for value in values(var.resources) : can(regex("^[0-9.]+(m|Mi|Gi|Ki)?$", value))])
    error_message = "resources: quantities such as 250m, 2, 512Mi, 2Gi."
  }
}

variable "labels" {
  description = "Labels added to every object."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.labels : length(value) <= 63])
    error_message = "labels: values of at most 63 characters."
  }
}
