# NATS nodes and service hosts: single instances at fixed private addresses (the certificates,
# the route lists and the gateway's service URLs name them). Every volume is encrypted, the
# metadata service asks for session tokens (IMDSv2), and no machine has a public address or an
# SSH key: operators use Session Manager.

locals {
  base_ami = var.ami_id != "" ? var.ami_id : data.aws_ami.ubuntu.id
  gpu_ami  = var.gpu_ami_id != "" ? var.gpu_ami_id : data.aws_ami.gpu.id
}

resource "aws_ebs_volume" "nats" {
  for_each          = { for node in local.nats : node.name => node }
  availability_zone = local.zones[each.value.subnet]
  size              = var.nats_volume_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = aws_kms_key.this.arn
  tags              = merge(local.tags, { Name = "${var.name}-${each.key}-jetstream" })
}

resource "aws_instance" "nats" {
  for_each               = { for node in local.nats : node.name => node }
  ami                    = local.base_ami
  instance_type          = var.nats_instance_type
  subnet_id              = aws_subnet.private[each.value.subnet].id
  private_ip             = each.value.ip
  vpc_security_group_ids = [local.sg.nats]
  iam_instance_profile   = aws_iam_instance_profile.tier["nats"].name
  user_data_base64       = base64gzip(local.cloud_config["nats/${each.key}"])
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
    kms_key_id  = aws_kms_key.this.arn
  }

  tags = merge(local.tags, { Name = "${var.name}-${each.key}", "cairn:role" = "nats" })

  # A new AMI or boot script does not replace a running node (and its place in the cluster):
  # roll nodes one at a time with `terraform apply -replace=...` (docs/deploy.md).
  lifecycle {
    ignore_changes = [ami, user_data_base64]
  }
}

resource "aws_volume_attachment" "nats" {
  for_each    = aws_instance.nats
  device_name = "/dev/xvdf"
  volume_id   = aws_ebs_volume.nats[each.key].id
  instance_id = each.value.id
}

resource "aws_instance" "services" {
  for_each               = { for host in local.service_hosts : host.name => host }
  ami                    = local.base_ami
  instance_type          = var.service_instance_type
  subnet_id              = aws_subnet.private[each.value.subnet].id
  private_ip             = each.value.ip
  vpc_security_group_ids = [local.sg.services]
  iam_instance_profile   = aws_iam_instance_profile.tier["services"].name
  user_data_base64       = base64gzip(local.cloud_config["services/${each.key}"])
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.service_volume_gb
    encrypted   = true
    kms_key_id  = aws_kms_key.this.arn
  }

  tags = merge(local.tags, { Name = "${var.name}-${each.key}", "cairn:role" = "services" })

  lifecycle {
    ignore_changes = [ami, user_data_base64]
  }
}
