output "gateway_urls" {
  description = "Each gateway's URL (put a load balancer in front: nginx_config)."
  value       = local.gateway_urls
}

output "admin_token_file" {
  description = "The first site-admin token, on the machine that ran Terraform (CAIRN_TOKEN for the CLI and SDK; make tokens of lesser power with it)."
  value       = "${local.local_dir}/upload/admin.token"
}

output "ca_file" {
  description = "The cluster CA's certificate (for clients of NATS); its key is next to it and never leaves this machine."
  value       = "${local.local_dir}/ca/ca.pem"
}

output "nats_urls" {
  description = "The NATS cluster's client URLs (TLS)."
  value       = [for m in local.nats_hosts : "tls://${m.address}:${var.nats_ports.client}"]
}

output "services" {
  description = "Where each service replica runs: unit name => { host, url }."
  value       = { for p in local.replicas : p.unit => { host = p.host, url = p.url } }
}

output "units" {
  description = "The units on each machine (systemd units, or cairn-supervise's)."
  value       = { for name, units in local.units : name => [for u in units : "cairn-${u.name}"] }
}

output "nginx_config" {
  description = "An nginx config for the gateways (least connections, event streams unbuffered): put it in /etc/nginx/conf.d/."
  value       = templatefile("${path.module}/templates/nginx.conf.tftpl", { gateways = [for m in local.gw_hosts : "${m.address}:${var.gateway_port}"], listen = 80 })
}
