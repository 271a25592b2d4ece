variable "region" {
  description = "The AWS region to run Cairn in."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-central-1."
  }
}

variable "availability_zones" {
  description = "Three zones of the region (a NATS node in each)."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]

  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "availability_zones: give three zones."
  }
}

variable "allowed_cidrs" {
  description = "Who may reach Cairn over HTTPS (your office, your VPN's exit)."
  type        = list(string)

  validation {
    condition     = alltrue([for cidr in var.allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidrs: IPv4 CIDR blocks."
  }
}

variable "certificate_arn" {
  description = "An ACM certificate for public_hostname, in the region."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "public_hostname" {
  description = "The name users reach Cairn at (the certificate's)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.public_hostname))
    error_message = "public_hostname must be a DNS name."
  }
}

variable "cairn_package" {
  description = "What pip installs on the machines (pin a version)."
  type        = string
  default     = "cairn"

  validation {
    condition     = length(var.cairn_package) > 0
    error_message = "cairn_package must not be empty."
  }
}

variable "agent_token_parameter" {
  description = "The SSM SecureString parameter with the agents' token (empty on the first apply; see the module's README)."
  type        = string
  default     = ""

  validation {
    condition     = var.agent_token_parameter == "" || can(regex("^/", var.agent_token_parameter))
    error_message = "agent_token_parameter must be empty or start with '/'."
  }
}
