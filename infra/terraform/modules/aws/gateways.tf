# Gateways: an autoscaling group behind an application load balancer that serves HTTPS with
# the given certificate (TLS 1.2+), drops malformed headers, and keeps event streams open an hour.

resource "aws_launch_template" "gateway" {
  name_prefix            = "${var.name}-gateway-"
  image_id               = local.base_ami
  instance_type          = var.gateway_instance_type
  vpc_security_group_ids = [local.sg.gateway]
  user_data              = base64gzip(local.cloud_config["gateway/all"])
  ebs_optimized          = true

  iam_instance_profile {
    name = aws_iam_instance_profile.tier["gateway"].name
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
      volume_size = 20
      encrypted   = true
      kms_key_id  = aws_kms_key.this.arn
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-gateway", "cairn:role" = "gateway" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "gateway" {
  name_prefix         = "${var.name}-gateway-"
  min_size            = var.gateways.min_size
  max_size            = var.gateways.max_size
  desired_capacity    = var.gateways.desired_capacity
  vpc_zone_identifier = aws_subnet.private[*].id
  target_group_arns   = [aws_lb_target_group.gateway.arn]
  health_check_type   = "ELB"
  # First boot installs Cairn: give it time before the load balancer's verdict counts.
  health_check_grace_period = 600

  launch_template {
    id      = aws_launch_template.gateway.id
    version = aws_launch_template.gateway.latest_version
  }

  # A new launch template version (a new Cairn) replaces gateways a few at a time, keeping
  # most of them serving: the rolling upgrade of docs/deploy.md.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
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

resource "aws_lb" "gateway" {
  #checkov:skip=CKV2_AWS_28:a WAF is the operator's choice (rules, cost); the balancer is open to allowed_cidrs only and the gateway authenticates and rate-limits every request; attach one with aws_wafv2_web_acl_association to load_balancer_arn
  #checkov:skip=CKV_AWS_91:every request is logged by the gateway itself (structured, to CloudWatch); ALB access logs would need a bucket with an ELB-writable policy, left to the operator
  name                       = "${var.name}-gateway"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [local.sg.alb]
  drop_invalid_header_fields = true
  idle_timeout               = 3600
  enable_deletion_protection = true
  tags                       = local.tags
}

resource "aws_lb_target_group" "gateway" {
  name_prefix          = "gw-"
  port                 = local.gateway_port
  protocol             = "HTTP"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 30

  # /healthz is 503 while any service the gateway routes to is down: a longer unhealthy count
  # keeps gateways in while one service restarts (docs/cluster.md).
  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 8
  }

  lifecycle {
    create_before_destroy = true
  }

  tags = local.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.gateway.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }

  tags = local.tags
}
