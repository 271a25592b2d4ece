variable "addresses" {
  description = "The three machines' addresses (private network), then any number of agent-only machines' (cairn-4, cairn-5, ...)."
  type        = list(string)
  validation {
    condition     = length(var.addresses) >= 3
    error_message = "addresses: three or more."
  }
}

variable "ssh_private_key_file" {
  description = "The SSH private key for the three machines."
  type        = string
}

variable "ssh_port" {
  description = "The machines' SSH port."
  type        = number
  default     = 22
}

variable "install_source" {
  description = "A Cairn wheel, an index URL, or the path of a virtual environment on every machine (see the module)."
  type        = string
}

variable "cluster_name" {
  description = "The cluster's name."
  type        = string
  default     = "cairn"
}

variable "service_manager" {
  description = "\"systemd\" (production) or \"cairn-supervise\" (machines without systemd)."
  type        = string
  default     = "systemd"
}

variable "replicas" {
  description = "Replicas per service, e.g. { registry = 2 }."
  type        = map(number)
  default     = {}
}

variable "root_dir" {
  description = "Where Cairn lives on each machine."
  type        = string
  default     = "/opt/cairn"
}

variable "separate_roots" {
  description = "Give each machine ROOT/NAME instead of ROOT: for machines that share one file system (the tests' network namespaces)."
  type        = bool
  default     = false
}

variable "local_dir" {
  description = "Where the generated secrets stay on this machine (default: .cairn-secrets here)."
  type        = string
  default     = null
}

variable "local_cairn" {
  description = "The cairn CLI on this machine."
  type        = string
  default     = "cairn"
}

variable "extra_environment" {
  description = "Environment for every Cairn process."
  type        = map(string)
  default     = {}
}

variable "service_environment" {
  description = "Environment for one kind of process (service name, \"gateway\" or \"agent\")."
  type        = map(map(string))
  default     = {}
}

variable "agent_queues" {
  description = "The queues the third machine's agents serve (one agent each)."
  type        = list(string)
  default     = ["default"]
}

variable "agent_gpus" {
  description = "GPUs each agent offers (null: what nvidia-smi lists)."
  type        = number
  default     = null
}

variable "remove_data_on_destroy" {
  description = "Whether terraform destroy removes the data (the event log) too."
  type        = bool
  default     = false
}

variable "backup" {
  description = "Scheduled backups of the event log on the first machine (the hosts module's backup variable); null: none."
  type = object({
    host     = optional(string)
    dir      = optional(string)
    schedule = optional(string, "daily")
    keep     = optional(number, 7)
  })
  default = null
  validation {
    condition     = var.backup == null ? true : var.backup.keep >= 1
    error_message = "backup.keep: at least 1."
  }
}

variable "extra_agent_queues" {
  description = "The queues of the agents on the agent-only machines (addresses after the first three)."
  type        = list(string)
  default     = ["default"]
  validation {
    condition     = length(var.extra_agent_queues) > 0
    error_message = "extra_agent_queues: at least one queue."
  }
}
