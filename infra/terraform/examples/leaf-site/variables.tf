variable "region" {
  description = "The AWS region of the cloud cluster."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-central-1."
  }
}

variable "availability_zones" {
  description = "Three zones of the region."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]

  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "availability_zones: give three zones."
  }
}

variable "allowed_cidrs" {
  description = "Who may reach Cairn over HTTPS besides the site."
  type        = list(string)

  validation {
    condition     = alltrue([for cidr in var.allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidrs: IPv4 CIDR blocks."
  }
}

variable "certificate_arn" {
  description = "An ACM certificate for public_hostname."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "public_hostname" {
  description = "The name users and the site's agents reach Cairn at."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.public_hostname))
    error_message = "public_hostname must be a DNS name."
  }
}

variable "cairn_package" {
  description = "What pip installs on the cloud machines (the same version as image)."
  type        = string
  default     = "cairn"

  validation {
    condition     = length(var.cairn_package) > 0
    error_message = "cairn_package must not be empty."
  }
}

variable "agent_token_parameter" {
  description = "SSM parameter with a token for cloud agents (none here; empty is fine)."
  type        = string
  default     = ""

  validation {
    condition     = var.agent_token_parameter == "" || can(regex("^/", var.agent_token_parameter))
    error_message = "agent_token_parameter must be empty or start with '/'."
  }
}

variable "site_cidr" {
  description = "The site's address block, routed through the VPN (its leaf nats-server connects from it)."
  type        = string

  validation {
    condition     = can(cidrhost(var.site_cidr, 0))
    error_message = "site_cidr must be an IPv4 CIDR block."
  }
}

variable "site_egress_cidr" {
  description = "The site's public address block (its agents reach the gateway's HTTPS load balancer from it)."
  type        = string

  validation {
    condition     = can(cidrhost(var.site_egress_cidr, 0))
    error_message = "site_egress_cidr must be an IPv4 CIDR block."
  }
}

variable "site_router_ip" {
  description = "The public address of the site's VPN router."
  type        = string

  validation {
    condition     = can(cidrhost("${var.site_router_ip}/32", 0))
    error_message = "site_router_ip must be an IPv4 address."
  }
}

variable "site_kubeconfig" {
  description = "The kubeconfig of the site's Kubernetes cluster."
  type        = string
  default     = "~/.kube/config"

  validation {
    condition     = length(var.site_kubeconfig) > 0
    error_message = "site_kubeconfig must name a file."
  }
}

variable "site_kube_context" {
  description = "The kubeconfig context of the site's cluster (null: the current one)."
  type        = string
  default     = null

  validation {
    condition     = var.site_kube_context == null || length(coalesce(var.site_kube_context, "x")) > 0
    error_message = "site_kube_context must be null or a context name."
  }
}

variable "image" {
  description = "The Cairn image the site's agents run (the same version as cairn_package)."
  type        = string

  validation {
    condition     = !can(regex(":latest$", var.image))
    error_message = "image: pin a version, not latest."
  }
}

variable "site_agent_token" {
  description = "The token the site's agents use (empty on the first apply: no agents yet)."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = !can(regex("\\s", var.site_agent_token))
    error_message = "site_agent_token must not contain white space."
  }
}

variable "site_gpu_agents" {
  description = "GPU agent pods at the site (one GPU each)."
  type        = number
  default     = 4

  validation {
    condition     = var.site_gpu_agents >= 0
    error_message = "site_gpu_agents must be 0 or more."
  }
}
