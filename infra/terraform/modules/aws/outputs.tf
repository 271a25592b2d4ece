output "gateway_url" {
  description = "Where users, SDKs and agents reach Cairn (point public_hostname's DNS record at load_balancer_dns_name)."
  value       = local.public_url
}

output "load_balancer_dns_name" {
  description = "The gateway load balancer's DNS name (the target of public_hostname's CNAME or alias record)."
  value       = aws_lb.gateway.dns_name
}

output "load_balancer_zone_id" {
  description = "The gateway load balancer's hosted zone id, for a Route 53 alias record."
  value       = aws_lb.gateway.zone_id
}

output "nats_urls" {
  description = "CAIRN_NATS_URL inside the VPC: every NATS node's client URL (TLS)."
  value       = local.nats_urls
}

output "nats_nodes" {
  description = "Each NATS node's name, private address and instance id."
  value       = { for name, instance in aws_instance.nats : name => { ip = instance.private_ip, instance_id = instance.id } }
}

output "service_hosts" {
  description = "Each service host's private address, instance id and the services it runs."
  value       = { for name, instance in aws_instance.services : name => { ip = instance.private_ip, instance_id = instance.id, services = local.placement[name] } }
}

output "parameter_path" {
  description = "Where the cluster's secrets live in SSM Parameter Store (/<name>/...: tls/, creds/, service-key, leaf/): made by the first NATS node at its first boot; `terraform destroy` does not remove them (see the README)."
  value       = local.parameter_path
}

output "leaf_config_parameters" {
  description = "Per leaf site: the SSM parameter holding its nats-server config (it dials every NATS node's leaf port as the agent user and expects the CA at /etc/cairn/tls/ca.pem, parameter /<name>/tls/ca.pem)."
  value       = { for site in keys(var.leaf_sites) : site => "${local.parameter_path}/leaf/${site}.conf" }
}

output "ca_parameter" {
  description = "The SSM parameter holding the NATS cluster's CA certificate."
  value       = "${local.parameter_path}/tls/ca.pem"
}

output "private_route_table_ids" {
  description = "The private subnets' route tables (propagate a VPN gateway's routes into them for leaf sites)."
  value       = aws_route_table.private[*].id
}

output "artifacts_bucket" {
  description = "The S3 bucket of artifact blobs."
  value       = aws_s3_bucket.artifacts.bucket
}

output "services_role_arn" {
  description = "The IAM role of the service machines: the only principal the artifacts bucket lets in."
  value       = aws_iam_role.tier["services"].arn
}

output "log_groups" {
  description = "CloudWatch log groups per tier (nats, services, gateway, agents)."
  value       = { for tier, group in aws_cloudwatch_log_group.tier : tier => group.name }
}

output "kms_key_arn" {
  description = "The KMS key that encrypts volumes, the bucket, the logs and the SSM parameters."
  value       = aws_kms_key.this.arn
}

output "vpc_id" {
  description = "The VPC's id (peer it or attach a VPN for leaf sites that should not use the internet)."
  value       = aws_vpc.this.id
}
