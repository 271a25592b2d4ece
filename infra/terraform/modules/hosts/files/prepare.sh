#!/bin/sh
# Runs on the machine that runs Terraform: the cluster's secrets, made once and kept.
# CAIRN_CLI, OUT, CLUSTER, HOSTS ("name=address ..."), NODES ("name=host:c:r:l ..."), REPLICAS.
# OUT/ca (the CA: its key never leaves this machine), OUT/upload (what goes to every machine:
# TLS certificates without the CA key, NATS credentials, the service key, the first admin token).
set -eu
umask 077
mkdir -p "$OUT/ca" "$OUT/upload/tls" "$OUT/upload/install"
host_args=""
for h in $HOSTS; do host_args="$host_args --host $h"; done
node_args=""
for n in $NODES; do node_args="$node_args --node $n"; done
# shellcheck disable=SC2086
$CAIRN_CLI cluster certs --out "$OUT/ca" --name "$CLUSTER" $host_args > /dev/null
# shellcheck disable=SC2086
$CAIRN_CLI cluster config --out "$OUT/nats" --tls-dir "$OUT/ca" --name "$CLUSTER" --replicas "$REPLICAS" $node_args > /dev/null
rm -rf "$OUT/upload/tls" "$OUT/upload/creds"
mkdir -p "$OUT/upload/tls"
for f in "$OUT/ca"/*.pem; do
  [ "$(basename "$f")" = ca-key.pem ] || cp "$f" "$OUT/upload/tls/"
done
cp -R "$OUT/nats/creds" "$OUT/upload/creds"
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
[ -s "$OUT/upload/service.key" ] || random_hex 32 > "$OUT/upload/service.key"
[ -s "$OUT/upload/admin.token" ] || printf 'cairn_%s_%s\n' "$(random_hex 6)" "$(random_hex 32)" > "$OUT/upload/admin.token"
chmod 600 "$OUT/upload/service.key" "$OUT/upload/admin.token"
