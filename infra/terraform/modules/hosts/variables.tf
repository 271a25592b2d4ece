variable "cluster_name" {
  description = "The cluster's name: the NATS cluster's name and the CA's subject."
  type        = string
  default     = "cairn"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", var.cluster_name))
    error_message = "cluster_name: letters, digits, '.', '_' and '-' only (at most 63)."
  }
}

variable "machines" {
  description = <<-EOT
    The machines, reachable over SSH. Each: name (unique), address (what the other machines and
    clients reach it at), roles (any of "nats", "services", "gateway", "agent"), optionally
    ssh_user (root), ssh_port (22), ssh_private_key_file (default var.ssh_private_key_file),
    root_dir (default var.root_dir) and, with the "agent" role, agent = { queues, gpus }:
    one agent process per queue offering that many GPUs (null: what nvidia-smi lists).
  EOT
  type = list(object({
    name                 = string
    address              = string
    roles                = list(string)
    ssh_user             = optional(string, "root")
    ssh_port             = optional(number, 22)
    ssh_private_key_file = optional(string)
    root_dir             = optional(string)
    agent = optional(object({
      queues = optional(list(string), ["default"])
      gpus   = optional(number)
    }), {})
  }))
  validation {
    condition     = length(var.machines) == length(distinct([for m in var.machines : m.name]))
    error_message = "machines: every name must be unique."
  }
  validation {
    condition = alltrue([for m in var.machines : length(m.roles) > 0 && alltrue([
    for r in m.roles : contains(["nats", "services", "gateway", "agent"], r)])])
    error_message = "machines[*].roles: one or more of \"nats\", \"services\", \"gateway\", \"agent\"."
  }
  validation {
    condition     = contains([1, 3, 5], length([for m in var.machines : m if contains(m.roles, "nats")]))
    error_message = "Give the \"nats\" role to 1, 3 or 5 machines (JetStream needs a majority of them up)."
  }
  validation {
    condition = (length([for m in var.machines : m if contains(m.roles, "services")]) > 0 &&
    length([for m in var.machines : m if contains(m.roles, "gateway")]) > 0)
    error_message = "At least one machine needs the \"services\" role and one the \"gateway\" role."
  }
  validation {
    condition     = alltrue([for m in var.machines : can(regex("^[a-z0-9][a-z0-9-]{0,30}$", m.name))])
    error_message = "machines[*].name: lowercase letters, digits and '-' (it names units and replicas)."
  }
}

variable "ssh_private_key_file" {
  description = "Path (on the machine running Terraform) of the SSH private key for every machine that names none."
  type        = string
}

variable "replicas" {
  description = <<-EOT
    Replicas per service, e.g. { registry = 2, metrics = 2 }; 1 for a service not named. Replica 1
    runs on the first "services" machine, replica N on the N-th (round robin). Every service but
    artifacts (its blobs stay on the first machine's disk here) may have more than one
    (docs/cluster.md); each metrics replica keeps points of its own in its data dir and gets the
    names of all of them in CAIRN_WRITER_REPLICAS ("main" for the first: main,r2,r3...).
  EOT
  type        = map(number)
  default     = {}
  validation {
    condition = alltrue([for name, n in var.replicas : contains(
    ["registry", "artifacts", "metrics", "scheduler", "lineage", "deployments", "monitor", "pipelines"], name)])
    error_message = "replicas: keys are service names (registry, artifacts, metrics, scheduler, lineage, deployments, monitor, pipelines)."
  }
  validation {
    condition     = alltrue([for name, n in var.replicas : n >= 1 && n <= 9 && (n == 1 || contains(["registry", "metrics", "lineage", "scheduler", "deployments", "monitor", "pipelines"], name))])
    error_message = "replicas: 1 to 9, and more than 1 only for registry, metrics, lineage, scheduler, deployments, monitor and pipelines (artifacts keep their blobs on one machine's disk here)."
  }
}

variable "install_source" {
  description = <<-EOT
    Where Cairn comes from: a wheel file on the machine running Terraform (uploaded and installed
    in ROOT/venv), a package index URL (https://..., installs var.package from it), or an absolute
    path of an existing virtual environment present on every machine (used as is: shared file
    systems, images with Cairn baked in, and the tests).
  EOT
  type        = string
  validation {
    condition     = can(regex("\\.whl$", var.install_source)) || can(regex("^https?://", var.install_source)) || can(regex("^/", var.install_source))
    error_message = "install_source: a .whl file, an http(s) index URL, or the absolute path of a virtual environment."
  }
}

variable "package" {
  description = "The requirement installed from an index URL install_source (pin it: a new pin is an upgrade)."
  type        = string
  default     = "cairn"
}

variable "root_dir" {
  description = "Where Cairn lives on each machine: ROOT/venv, ROOT/etc (configs, TLS, units), ROOT/data (event log store, read models), ROOT/run."
  type        = string
  default     = "/opt/cairn"
  validation {
    condition     = can(regex("^/[^ ]+$", var.root_dir)) && var.root_dir != "/"
    error_message = "root_dir: an absolute path without spaces, not '/'."
  }
}

variable "remove_data_on_destroy" {
  description = "Whether terraform destroy also removes ROOT/data (the NATS store: the event log) on each machine. Off by default."
  type        = bool
  default     = false
}

variable "service_manager" {
  description = "\"systemd\" (production: units in /etc/systemd/system) or \"cairn-supervise\" (machines without systemd: containers, test namespaces; python -m cairn.cluster.supervise runs the same unit files)."
  type        = string
  default     = "systemd"
  validation {
    condition     = contains(["systemd", "cairn-supervise"], var.service_manager)
    error_message = "service_manager: \"systemd\" or \"cairn-supervise\"."
  }
}

variable "nats_ports" {
  description = "The NATS ports on each nats machine: clients, routes between nodes, leaf sites."
  type        = object({ client = optional(number, 4222), cluster = optional(number, 6222), leaf = optional(number, 7422) })
  default     = {}
  validation {
    condition     = alltrue([for p in [var.nats_ports.client, var.nats_ports.cluster, var.nats_ports.leaf] : p >= 1 && p <= 65535]) && length(distinct([var.nats_ports.client, var.nats_ports.cluster, var.nats_ports.leaf])) == 3
    error_message = "nats_ports: three different ports, 1-65535."
  }
}

variable "service_base_port" {
  description = "Service ports: the N-th service's replica R listens on service_base_port + 10*N + R (on the private network)."
  type        = number
  default     = 7100
  validation {
    condition     = var.service_base_port >= 1024 && var.service_base_port <= 65000
    error_message = "service_base_port: 1024-65000."
  }
}

variable "gateway_port" {
  description = "The gateways' port (the one public port)."
  type        = number
  default     = 8080
  validation {
    condition     = var.gateway_port >= 1 && var.gateway_port <= 65535
    error_message = "gateway_port: 1-65535."
  }
}

variable "local_dir" {
  description = "A folder on the machine running Terraform for what it generates: the CA (its key stays here), NATS credentials, the service key, the first admin token. Default: PATH.ROOT/.cairn-secrets. Keep it like the state: it holds secrets."
  type        = string
  default     = null
}

variable "local_cairn" {
  description = "The cairn CLI on the machine running Terraform (makes the certificates and credentials)."
  type        = string
  default     = "cairn"
}

variable "python" {
  description = "The Python 3.11+ on each machine that makes ROOT/venv (wheel and index installs)."
  type        = string
  default     = "python3"
}

variable "extra_environment" {
  description = "Environment added to every Cairn process (proxies, CAIRN_* settings; the tests put their source tree on PYTHONPATH)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.extra_environment : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && !can(regex("['\\n]", v))])
    error_message = "extra_environment: NAMES_LIKE_THIS, values without single quotes or newlines."
  }
}

variable "service_environment" {
  description = "Environment for the processes of one kind only: keys are service names, \"gateway\" or \"agent\" (e.g. { registry = { CAIRN_LOG_LEVEL = \"debug\" } }). A change restarts just those, one at a time."
  type        = map(map(string))
  default     = {}
  validation {
    condition = alltrue([for name, env in var.service_environment : contains(
      ["registry", "artifacts", "metrics", "scheduler", "lineage", "deployments", "monitor", "pipelines", "gateway", "agent"], name) && alltrue([
    for k, v in env : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && !can(regex("['\\n]", v))])])
    error_message = "service_environment: keys are service names, \"gateway\" or \"agent\"; NAMES_LIKE_THIS; values without single quotes or newlines."
  }
}

variable "backup" {
  description = <<-EOT
    Scheduled backups of the event log and the other JetStream state (cairn backup create;
    docs/deploy.md, "Backups and restore"), taken on one machine: null (the default) for none, or
    { host (a machine's name; default the first "nats" machine), dir (default ROOT/backups),
    schedule (a systemd OnCalendar expression, default "daily"), keep (backups kept, default 7) }.
    That machine gets ROOT/etc/backup.sh; under systemd the cairn-backup.timer runs it, under
    cairn-supervise (no timers) run it from cron. Backups hold the services' keys: keep them safe.
  EOT
  type = object({
    host     = optional(string)
    dir      = optional(string)
    schedule = optional(string, "daily")
    keep     = optional(number, 7)
  })
  default = null
  validation {
    condition = var.backup == null ? true : (
      var.backup.keep >= 1 && floor(var.backup.keep) == var.backup.keep &&
      can(regex("^[A-Za-z0-9 *:/,.~-]+$", var.backup.schedule)) &&
      (var.backup.dir == null ? true : can(regex("^/[^ ']+$", var.backup.dir))) &&
      (var.backup.host == null ? true : contains([for m in var.machines : m.name], var.backup.host))
    )
    error_message = "backup: keep a whole number >= 1, schedule an OnCalendar expression, dir an absolute path without spaces or quotes, host one of the machines' names."
  }
}
