variable "name" {
  description = "Name of this Cairn installation: prefixes every resource, the NATS cluster's name and the SSM parameter path (/<name>/...)."
  type        = string
  default     = "cairn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name: 3 to 24 lowercase letters, digits and '-', starting with a letter (it becomes part of S3 bucket and load balancer names)."
  }
}

variable "cairn_package" {
  description = "What `pip install` gets on every machine: a version pin (\"cairn==0.9.0\"), a wheel's URL, or a package from your own index (see pip_index_url)."
  type        = string
  default     = "cairn"

  validation {
    condition     = length(trimspace(var.cairn_package)) > 0
    error_message = "cairn_package must name what pip installs, e.g. \"cairn==0.9.0\" or an https URL of a wheel."
  }
}

variable "pip_index_url" {
  description = "A Python package index to install Cairn from instead of PyPI (empty: PyPI)."
  type        = string
  default     = ""

  validation {
    condition     = var.pip_index_url == "" || can(regex("^https://", var.pip_index_url))
    error_message = "pip_index_url must be empty or an https:// URL."
  }
}

variable "vpc_cidr" {
  description = "The VPC's address range; subnets are /20s carved from it (private ones first, public ones from the 9th /20 on)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be an IPv4 CIDR block of /16 or larger, e.g. 10.40.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread machines over (2 or 3): NATS nodes and service hosts go round robin over them, so losing one zone keeps a NATS majority with 3 zones."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "availability_zones: give 2 or 3 zones of the provider's region (the load balancer needs 2)."
  }
}

variable "allowed_cidrs" {
  description = "Who may reach the gateway's load balancer (HTTPS). Nothing else is open to the internet."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for cidr in var.allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidrs: one or more IPv4 CIDR blocks, e.g. [\"203.0.113.0/24\"]."
  }
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate the load balancer serves HTTPS with (for public_hostname)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN (arn:aws:acm:...)."
  }
}

variable "public_hostname" {
  description = "The host name users and agents reach the gateway at (the certificate's name, pointed at the load balancer by your DNS). Empty: the load balancer's own DNS name."
  type        = string
  default     = ""

  validation {
    condition     = var.public_hostname == "" || can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.public_hostname))
    error_message = "public_hostname must be a DNS name such as cairn.example.com (no scheme, no port)."
  }
}

variable "ami_id" {
  description = "AMI of the NATS, service, gateway and CPU agent machines (Ubuntu 22.04/24.04 or Debian 12 with python3-venv available). Empty: the newest Canonical Ubuntu 24.04 LTS image."
  type        = string
  default     = ""

  validation {
    condition     = var.ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be empty or an AMI id (ami-...)."
  }
}

variable "gpu_ami_id" {
  description = "AMI of GPU agent machines: one with the NVIDIA driver installed. Empty: the newest AWS Deep Learning Base GPU AMI (Ubuntu 22.04)."
  type        = string
  default     = ""

  validation {
    condition     = var.gpu_ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.gpu_ami_id))
    error_message = "gpu_ami_id must be empty or an AMI id (ami-...)."
  }
}

variable "nats_nodes" {
  description = "NATS servers in the JetStream cluster (3 or 5): a write needs a majority of them."
  type        = number
  default     = 3

  validation {
    condition     = contains([3, 5], var.nats_nodes)
    error_message = "nats_nodes must be 3 or 5 (an odd number, so a majority survives one or two losses)."
  }
}

variable "nats_instance_type" {
  description = "Instance type of the NATS servers."
  type        = string
  default     = "m6i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.nats_instance_type))
    error_message = "nats_instance_type must be an EC2 instance type such as m6i.large."
  }
}

variable "nats_volume_gb" {
  description = "Size of each NATS server's encrypted data volume (the event log lives here, CAIRN_REPLICAS copies of it)."
  type        = number
  default     = 100

  validation {
    condition     = var.nats_volume_gb >= 20 && var.nats_volume_gb <= 16384
    error_message = "nats_volume_gb must be between 20 and 16384."
  }
}

variable "service_hosts" {
  description = "Machines running the Cairn services. Each runs a replica of every service (registry, lineage, scheduler, artifacts, deployments, monitor, pipelines, metrics: artifacts over the S3 bucket; each metrics replica keeps points of its own, CAIRN_WRITER_REPLICAS naming them all)."
  type        = number
  default     = 2

  validation {
    condition     = var.service_hosts >= 1 && var.service_hosts <= 9
    error_message = "service_hosts must be between 1 and 9."
  }
}

variable "service_instance_type" {
  description = "Instance type of the service machines."
  type        = string
  default     = "m6i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.service_instance_type))
    error_message = "service_instance_type must be an EC2 instance type such as m6i.large."
  }
}

variable "service_volume_gb" {
  description = "Size of each service machine's encrypted root volume (read models: SQLite, DuckDB, Parquet)."
  type        = number
  default     = 100

  validation {
    condition     = var.service_volume_gb >= 20 && var.service_volume_gb <= 16384
    error_message = "service_volume_gb must be between 20 and 16384."
  }
}

variable "gateways" {
  description = "Gateways behind the load balancer: min_size, max_size and desired_capacity of their autoscaling group. Each enforces 1/min_size of every rate limit (CAIRN_GATEWAY_REPLICAS)."
  type = object({
    min_size         = number
    max_size         = number
    desired_capacity = number
  })
  default = { min_size = 2, max_size = 4, desired_capacity = 2 }

  validation {
    condition     = var.gateways.min_size >= 1 && var.gateways.min_size <= var.gateways.desired_capacity && var.gateways.desired_capacity <= var.gateways.max_size
    error_message = "gateways: need 1 <= min_size <= desired_capacity <= max_size."
  }
}

variable "gateway_instance_type" {
  description = "Instance type of the gateways."
  type        = string
  default     = "c6i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.gateway_instance_type))
    error_message = "gateway_instance_type must be an EC2 instance type such as m6i.large."
  }
}

variable "agent_pools" {
  description = "Agent pools, each an autoscaling group taking jobs from one queue. gpus > 0 makes it a GPU pool (gpu_ami_id, `cairn agent --gpus`)."
  type = map(object({
    instance_type    = string
    queue            = string
    min_size         = number
    max_size         = number
    desired_capacity = number
    gpus             = optional(number, 0)
    volume_gb        = optional(number, 200)
  }))
  default = {
    cpu = { instance_type = "c6i.2xlarge", queue = "default", min_size = 0, max_size = 4, desired_capacity = 1 }
  }

  validation {
    condition = alltrue([for pool_name, pool in var.agent_pools :
      can(regex("^[a-z][a-z0-9-]{0,15}$", pool_name)) && can(regex("^[A-Za-z0-9_.-]+$", pool.queue)) &&
      pool.min_size >= 0 && pool.min_size <= pool.desired_capacity && pool.desired_capacity <= pool.max_size &&
    pool.gpus >= 0 && pool.gpus <= 16 && pool.volume_gb >= 20])
    error_message = "agent_pools: names of up to 16 lowercase letters, digits and '-'; a queue name; 0 <= min_size <= desired_capacity <= max_size; 0 <= gpus <= 16; volume_gb >= 20."
  }
}

variable "agent_token_parameter" {
  description = "Name of an SSM SecureString parameter holding the token agents use (a service account's, made after the first apply: see the README). Empty: agent machines start but run no agent until it is set."
  type        = string
  default     = ""

  validation {
    condition     = var.agent_token_parameter == "" || can(regex("^/", var.agent_token_parameter))
    error_message = "agent_token_parameter must be empty or an SSM parameter name starting with '/'."
  }
}

variable "leaf_sites" {
  description = "Remote sites (on-premises GPUs, another cloud) whose leaf nats-servers join the cluster: site name => the CIDR blocks they connect from, over a VPN or peering (the NATS nodes have private addresses only). Each gets the NATS nodes' leaf port (7422, TLS) opened to its blocks, and a ready-made leaf nats-server config in SSM (/<name>/leaf/<site>.conf)."
  type        = map(list(string))
  default     = {}

  validation {
    condition = alltrue([for site, cidrs in var.leaf_sites :
    can(regex("^[a-z][a-z0-9-]{0,30}$", site)) && length(cidrs) > 0 && alltrue([for cidr in cidrs : can(cidrhost(cidr, 0))])])
    error_message = "leaf_sites: site names of lowercase letters, digits and '-', each with one or more IPv4 CIDR blocks."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the machines' Cairn logs (one of CloudWatch's retention values)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.tags : length(key) <= 128 && length(value) <= 256])
    error_message = "tags: keys of at most 128 characters, values of at most 256."
  }
}
