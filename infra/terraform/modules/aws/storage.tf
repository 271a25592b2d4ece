# Artifact blobs (the artifacts service's S3 backend): encrypted with this installation's key,
# versioned, never public, reachable over TLS only, and by the services' role only: the bucket
# policy refuses every other principal of the account as well, so an agent machine, a gateway or
# a person's credentials cannot read blobs around the service's access checks. Clients transfer
# bytes through presigned URLs that the service signs.

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV2_AWS_62:nothing consumes bucket events: the artifacts service records every blob in the event log
  #checkov:skip=CKV_AWS_144:cross-region replication doubles storage cost and needs a second region's bucket and key; blobs are versioned here, back them up per docs/deploy.md
  #checkov:skip=CKV_AWS_18:access to blobs goes through the artifacts service, whose actions are events of record (the audit log); enable CloudTrail S3 data events for raw access records
  bucket_prefix = "${var.name}-artifacts-"
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Staged uploads that were never committed, and old versions of replaced objects, do not pile up.
resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    id     = "expire-stale"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
  }
}

data "aws_iam_policy_document" "artifacts_bucket" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  statement {
    sid       = "ObjectsOnlyThroughTheServicesRole"
    effect    = "Deny"
    actions   = ["s3:GetObject*", "s3:PutObject*", "s3:DeleteObject*", "s3:ListBucket*", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.tier["services"].arn]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket     = aws_s3_bucket.artifacts.id
  policy     = data.aws_iam_policy_document.artifacts_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# One role per tier of machines; each may read its own SSM parameters and write its logs.
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "tier" {
  for_each           = toset(["nats", "services", "gateway", "agents"])
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "tier" {
  for_each = aws_iam_role.tier
  name     = each.value.name
  role     = each.value.name
  tags     = local.tags
}

# Session Manager instead of SSH: no key pairs, no port 22 anywhere.
resource "aws_iam_role_policy_attachment" "ssm_core" {
  for_each   = aws_iam_role.tier
  role       = each.value.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

locals {
  parameter_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter${local.parameter_path}"
  # Which parameters each tier reads (all wait for `ready`): NATS nodes everything (their configs
  # list every user's password; the first one makes and puts them all); services and gateways
  # the CA, their own users and the service key; agents the CA and the agent token only (their
  # NATS user comes from the scheduler).
  tier_parameters = {
    nats = ["${local.parameter_arn}/*"]
    services = concat(
      ["${local.parameter_arn}/ready", "${local.parameter_arn}/tls/ca.pem", "${local.parameter_arn}/service-key", "${local.parameter_arn}/creds/agent"],
    [for service in keys(local.service_ports) : "${local.parameter_arn}/creds/${service}"])
    gateway = ["${local.parameter_arn}/ready", "${local.parameter_arn}/tls/ca.pem", "${local.parameter_arn}/service-key", "${local.parameter_arn}/creds/gateway"]
    agents = concat(["${local.parameter_arn}/ready", "${local.parameter_arn}/tls/ca.pem"], var.agent_token_parameter == "" ? [] :
    ["arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter${var.agent_token_parameter}"])
  }
}

data "aws_iam_policy_document" "tier" {
  for_each = aws_iam_role.tier
  statement {
    sid       = "OwnParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = local.tier_parameters[each.key]
  }
  statement {
    sid       = "DecryptParameters"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
  dynamic "statement" {
    for_each = each.key == "nats" ? [1] : []
    content {
      sid       = "PutTheSecretsOnce"
      actions   = ["ssm:PutParameter", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = ["${local.parameter_arn}/*", aws_kms_key.this.arn]
    }
  }
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.tier[each.key].arn}:*"]
  }
  dynamic "statement" {
    for_each = each.key == "services" ? [1] : []
    content {
      sid       = "ArtifactsBucket"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:GetBucketLocation"]
      resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "services" ? [1] : []
    content {
      sid       = "ArtifactsKey"
      actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
      resources = [aws_kms_key.this.arn]
    }
  }
}

resource "aws_iam_role_policy" "tier" {
  for_each = aws_iam_role.tier
  name     = "cairn"
  role     = each.value.name
  policy   = data.aws_iam_policy_document.tier[each.key].json
}
