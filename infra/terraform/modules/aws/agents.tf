# Agent pools: an autoscaling group each, taking jobs from one queue. GPU pools boot an image with
# the NVIDIA driver and offer their GPUs (`cairn agent --gpus`); agents reach the gateway through
# the load balancer (from the NAT gateways' addresses) and NATS on the client port.

resource "aws_launch_template" "agents" {
  for_each               = var.agent_pools
  name_prefix            = "${var.name}-agents-${each.key}-"
  image_id               = each.value.gpus > 0 ? local.gpu_ami : local.base_ami
  instance_type          = each.value.instance_type
  vpc_security_group_ids = [local.sg.agents]
  user_data              = base64gzip(local.cloud_config["agents/${each.key}"])
  ebs_optimized          = true

  iam_instance_profile {
    name = aws_iam_instance_profile.tier["agents"].name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_type = "gp3"
      volume_size = each.value.volume_gb
      encrypted   = true
      kms_key_id  = aws_kms_key.this.arn
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-agents-${each.key}", "cairn:role" = "agents", "cairn:queue" = each.value.queue })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "agents" {
  for_each            = var.agent_pools
  name_prefix         = "${var.name}-agents-${each.key}-"
  min_size            = each.value.min_size
  max_size            = each.value.max_size
  desired_capacity    = each.value.desired_capacity
  vpc_zone_identifier = aws_subnet.private[*].id

  launch_template {
    id      = aws_launch_template.agents[each.key].id
    version = aws_launch_template.agents[each.key].latest_version
  }

  # Scaling is left to the operator (or an autoscaling policy of their own): a running job's
  # machine must not be taken away because a CPU average dropped.
  lifecycle {
    ignore_changes = [desired_capacity]
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
