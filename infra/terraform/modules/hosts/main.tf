# The hosts module: Cairn on machines reachable over SSH, with nothing but Terraform itself.
# 1. terraform_data.secrets (on the machine running Terraform): CA and host certificates, NATS
#    credentials, the service key and the first admin token (files/prepare.sh; kept on re-runs).
# 2. terraform_data.host, one per machine: upload those (never the CA key) and a setup script
#    rendered for the machine, run it (install, NATS configs, units, start/restart what changed).
#    A change replaces the resource create-before-destroy: the new one converges the machine, and
#    the old one's destroy step sees that the machine now belongs to its successor (ROOT/etc/owner)
#    and leaves it alone; a real destroy (or a machine taken out of var.machines) stops and
#    removes everything, ROOT/data only with remove_data_on_destroy.

resource "terraform_data" "secrets" {
  triggers_replace = [var.cluster_name, local.nats_nodes]

  provisioner "local-exec" {
    command = "sh ${path.module}/files/prepare.sh"
    environment = {
      CAIRN_CLI = var.local_cairn
      OUT       = local.local_dir
      CLUSTER   = var.cluster_name
      HOSTS     = join(" ", [for m in local.nats_hosts : "${m.name}=${m.address}"])
      NODES     = join(" ", local.nats_nodes)
      REPLICAS  = tostring(local.js_replicas)
    }
  }
}

locals {
  install = can(regex("\\.whl$", var.install_source)) ? "wheel" : (can(regex("^https?://", var.install_source)) ? "index" : "venv")
  setup = { for name, m in local.hosts : name => templatefile("${path.module}/templates/setup.sh.tftpl", {
    host    = name, root = m.root, install = local.install, install_source = var.install_source,
    package = var.package, python = var.python, wheel_name = basename(var.install_source),
    cluster = var.cluster_name, js_replicas = local.js_replicas, nats_nodes = local.nats_nodes,
    units   = local.units[name], manager = var.service_manager, extra_env = var.extra_environment,
    release = local.release, gateway = contains(m.roles, "gateway"),
    backup = name != local.backup_host ? null : {
      dir = coalesce(var.backup.dir, "${m.root}/backups"), schedule = var.backup.schedule, keep = var.backup.keep
    }
  }) }
  teardown = { for name, m in local.hosts : name => templatefile("${path.module}/templates/teardown.sh.tftpl", {
    host = name, root = m.root, manager = var.service_manager, extra_env = var.extra_environment
  }) }
}

resource "terraform_data" "host" {
  for_each = local.hosts

  # what the destroy step needs (it may read only self)
  input = {
    address     = each.value.address
    user        = each.value.ssh_user
    port        = each.value.ssh_port
    key_file    = each.value.key_file
    root        = each.value.root
    remove_data = var.remove_data_on_destroy
  }
  triggers_replace = [terraform_data.secrets.id, sha256(local.setup[each.key]), sha256(local.teardown[each.key]),
  local.install == "wheel" ? filesha256(var.install_source) : local.release]

  connection {
    type        = "ssh"
    host        = self.input.address
    user        = self.input.user
    port        = self.input.port
    private_key = file(self.input.key_file)
    timeout     = "2m"
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p '${each.value.root}/etc/upload/install' && chmod 700 '${each.value.root}/etc'"]
  }
  provisioner "file" {
    source      = "${local.local_dir}/upload/"
    destination = "${each.value.root}/etc/upload"
  }
  provisioner "file" {
    source      = local.install == "wheel" ? var.install_source : "${path.module}/files/no-wheel.txt"
    destination = "${each.value.root}/etc/upload/install/${local.install == "wheel" ? basename(var.install_source) : "no-wheel.txt"}"
  }
  provisioner "file" {
    content     = local.teardown[each.key]
    destination = "${each.value.root}/etc/teardown.sh"
  }
  provisioner "file" {
    content     = local.setup[each.key]
    destination = "${each.value.root}/etc/setup.sh"
  }
  provisioner "remote-exec" {
    inline = ["sh '${each.value.root}/etc/setup.sh'", "echo '${self.id}' > '${each.value.root}/etc/owner'"]
  }

  provisioner "remote-exec" {
    when = destroy
    inline = [
      "if [ \"$(cat '${self.input.root}/etc/owner' 2>/dev/null)\" = '${self.id}' ]; then sh '${self.input.root}/etc/teardown.sh' ${self.input.remove_data}; else echo 'this machine now belongs to a newer apply: left as it is'; fi",
    ]
  }

  lifecycle {
    create_before_destroy = true
  }
}
