# The cluster's secrets are made on the first NATS node at its first boot, by Cairn itself
# (`cairn cluster certs`, `cairn cluster config`: the same commands as on machines of the hosts
# module), and kept in SSM Parameter Store as SecureStrings under this installation's KMS key
# (templates/cairn_secrets.py). Terraform never sees them, so the state holds no secret. Each
# machine's boot script fetches what its role needs; its IAM role may read nothing else.
#
# Parameters under /<name>/ (a documented contract: operators and leaf sites read them too):
#   tls/ca.pem, tls/ca-key.pem, tls/<node>.pem, tls/<node>-key.pem   `cairn cluster certs` files
#   creds/<role>        {"user": ..., "password": ...} per NATS user (cairn.up.NATS_USERS)
#   service-key         the site's service key (64 hex digits)
#   leaf/<site>.conf    a leaf site's nats-server config (`cairn cluster config --site`)
#   ready               written last: the others wait for it

resource "aws_kms_key" "this" {
  description             = "Cairn ${var.name}: SSM parameters, S3 artifacts, CloudWatch logs, EBS volumes"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" resource is the key itself; the account root administers it, as AWS's default key policy does
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself; the account root administers it, as AWS's default key policy does
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself (key policies name no other resource)
  # The account administers the key; the machines' roles get their use of it in their own policies.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${local.log_group}*"]
    }
  }
}
