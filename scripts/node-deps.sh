#!/usr/bin/env bash
# Installs the Debian packages the local cluster's real node runs on (make cluster REAL_NODE=1,
# e2e/node/README.md): containerd 1.6 (CRI v1) and runc, the CNI plugins (bridge, host-local,
# portmap, loopback in /usr/lib/cni), iptables and conntrack for kube-proxy, iproute2 for the
# node's bridge. Idempotent: does nothing when every binary is already there. Needs root (or sudo).
# The containerd package starts nothing here (no systemd); the node runs its own containerd with
# its own sockets and state under the cluster directory.
set -euo pipefail

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ip >/dev/null || need+=(iproute2)
command -v findmnt >/dev/null || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then
  echo "node packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${need[*]}"
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's containerd unit is enabled where systemd runs; the node starts its own instead.
$sudo service containerd stop >/dev/null 2>&1 || true
echo "node packages: installed ${need[*]}"
