variable "kubeconfig" {
  description = "The kubeconfig file of the cluster to deploy to."
  type        = string
  default     = "~/.kube/config"

  validation {
    condition     = length(var.kubeconfig) > 0
    error_message = "kubeconfig must name a file."
  }
}

variable "kube_context" {
  description = "The kubeconfig context to use (null: the current one)."
  type        = string
  default     = null

  validation {
    condition     = var.kube_context == null || length(coalesce(var.kube_context, "x")) > 0
    error_message = "kube_context must be null or a context name."
  }
}

variable "image" {
  description = "The Cairn image, pinned (registry.example.com/cairn:0.9.0)."
  type        = string

  validation {
    condition     = !can(regex(":latest$", var.image))
    error_message = "image: pin a version, not latest."
  }
}

variable "host" {
  description = "The host name of the Ingress."
  type        = string
  default     = "cairn.example.com"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.host))
    error_message = "host must be a DNS name."
  }
}

variable "tls_secret" {
  description = "A kubernetes.io/tls Secret in the namespace for host (made by cert-manager, for instance)."
  type        = string
  default     = "cairn-tls"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.tls_secret))
    error_message = "tls_secret must be a Secret name."
  }
}

variable "agent_token" {
  description = "The agents' token (empty on the first apply; see the module's README)."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = !can(regex("\\s", var.agent_token))
    error_message = "agent_token must not contain white space."
  }
}
