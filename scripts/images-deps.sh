#!/usr/bin/env bash
# Installs the Debian packages `make images` and the image tests use: podman and buildah (with
# runc: crun cannot run on this machine's cgroup v1 hybrid layout), slirp4netns, mmdebstrap (the
# Debian base image is made from the same archive apt uses here), skopeo and docker-registry
# (a registry on 127.0.0.1 that serves the built images to a real node).
# Idempotent: does nothing when every tool is already there. Needs root (or sudo).
set -euo pipefail

need=()
for tool in podman buildah runc mmdebstrap skopeo slirp4netns catatonit; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v nsenter >/dev/null || need+=(util-linux)
# podman's default network stack on bookworm; the image tests use pods without a bridge.
dpkg -s containernetworking-plugins >/dev/null 2>&1 || need+=(containernetworking-plugins)
# mmdebstrap verifies the archive with the Debian keyring.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)

if [ ${#need[@]} -eq 0 ]; then
  echo "image packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# docker-registry's package starts a system-wide registry on :5000; `make images` runs its own
# on 127.0.0.1 with its storage under the repository.
$sudo service docker-registry stop >/dev/null 2>&1 || true
echo "image packages: installed ${need[*]}"
