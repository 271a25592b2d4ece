# Only the gateway's load balancer is open to the outside (HTTPS from allowed_cidrs); the NATS
# nodes' leaf port is open to the leaf sites' blocks (reached over a VPN or peering: the nodes
# have private addresses only). Inside, each tier opens its
# ports to the tiers that call it and no other.

resource "aws_security_group" "tier" {
  #checkov:skip=CKV2_AWS_5:false positive: every group is attached (instances, launch templates, the load balancer) through local.sg, which checkov does not follow
  for_each    = toset(["alb", "gateway", "services", "nats", "agents"])
  name        = "${var.name}-${each.key}"
  description = "Cairn ${var.name}: ${each.key}"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-${each.key}" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  sg                 = { for tier, group in aws_security_group.tier : tier => group.id }
  first_service_port = min(values(local.service_ports)...)
  last_service_port  = max(values(local.service_ports)...)
  # Agents behind the NAT gateways reach the gateway through the public load balancer.
  nat_cidrs = [for eip in aws_eip.nat : "${eip.public_ip}/32"]

  # tier, what it lets in, ports, from whom (another tier or CIDR blocks).
  ingress = merge(
    { for index, cidr in var.allowed_cidrs : "alb-https-${index}" => { tier = "alb", port = 443, to = 443, from_tier = null, cidr = cidr } },
    { for index in range(length(local.zones)) : "alb-https-nat-${index}" => { tier = "alb", port = 443, to = 443, from_tier = null, cidr = local.nat_cidrs[index] } },
    {
      "gateway-from-alb"      = { tier = "gateway", port = local.gateway_port, to = local.gateway_port, from_tier = "alb", cidr = null }
      "services-from-gateway" = { tier = "services", port = local.first_service_port, to = local.last_service_port, from_tier = "gateway", cidr = null }
      "services-from-self"    = { tier = "services", port = local.first_service_port, to = local.last_service_port, from_tier = "services", cidr = null }
      "nats-from-services"    = { tier = "nats", port = local.nats_client_port, to = local.nats_client_port, from_tier = "services", cidr = null }
      "nats-from-gateway"     = { tier = "nats", port = local.nats_client_port, to = local.nats_client_port, from_tier = "gateway", cidr = null }
      "nats-from-agents"      = { tier = "nats", port = local.nats_client_port, to = local.nats_client_port, from_tier = "agents", cidr = null }
      "nats-routes"           = { tier = "nats", port = local.nats_cluster_port, to = local.nats_cluster_port, from_tier = "nats", cidr = null }
      # Multi-node jobs: torch.distributed / MPI rendezvous between the agents of one job.
      "agents-from-agents" = { tier = "agents", port = 1024, to = 65535, from_tier = "agents", cidr = null }
    },
    merge([for site, cidrs in var.leaf_sites : { for index, cidr in cidrs :
      "leaf-${site}-${index}" => { tier = "nats", port = local.nats_leaf_port, to = local.nats_leaf_port, from_tier = null, cidr = cidr }
    }]...),
  )

  # Outbound: to the tiers each one calls, and HTTP(S) anywhere: the package index and the
  # distribution's mirrors (plain HTTP, signed packages), AWS APIs, S3.
  egress = merge({ for pair in setproduct(["gateway", "services", "nats", "agents"], [80, 443]) :
    "${pair[0]}-out-${pair[1]}" => { tier = pair[0], port = pair[1], to = pair[1], to_tier = null, cidr = "0.0.0.0/0" }
    }, {
    "alb-to-gateway"       = { tier = "alb", port = local.gateway_port, to = local.gateway_port, to_tier = "gateway", cidr = null }
    "gateway-to-services"  = { tier = "gateway", port = local.first_service_port, to = local.last_service_port, to_tier = "services", cidr = null }
    "gateway-to-nats"      = { tier = "gateway", port = local.nats_client_port, to = local.nats_client_port, to_tier = "nats", cidr = null }
    "services-to-services" = { tier = "services", port = local.first_service_port, to = local.last_service_port, to_tier = "services", cidr = null }
    "services-to-nats"     = { tier = "services", port = local.nats_client_port, to = local.nats_client_port, to_tier = "nats", cidr = null }
    "nats-to-nats"         = { tier = "nats", port = local.nats_cluster_port, to = local.nats_cluster_port, to_tier = "nats", cidr = null }
    "agents-to-nats"       = { tier = "agents", port = local.nats_client_port, to = local.nats_client_port, to_tier = "nats", cidr = null }
    "agents-to-agents"     = { tier = "agents", port = 1024, to = 65535, to_tier = "agents", cidr = null }
  })
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each                     = local.ingress
  security_group_id            = local.sg[each.value.tier]
  description                  = each.key
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.to
  referenced_security_group_id = each.value.from_tier == null ? null : local.sg[each.value.from_tier]
  cidr_ipv4                    = each.value.cidr
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each                     = local.egress
  security_group_id            = local.sg[each.value.tier]
  description                  = each.key
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.to
  referenced_security_group_id = each.value.to_tier == null ? null : local.sg[each.value.to_tier]
  cidr_ipv4                    = each.value.cidr
  tags                         = local.tags
}
