#!/usr/bin/env bash
# A local image registry (Debian's docker-registry) on 127.0.0.1 that serves what
# `make images` built, for a real node on this machine (containerd/CRI-O pulling
# 127.0.0.1:PORT/pynomaly/...:TAG over plain HTTP; configure it as an insecure registry).
#   images/registry.sh start   start it (state in .images/registry, log .images/registry.log)
#   images/registry.sh push    start it if needed, push every image of .images/images.env
#   images/registry.sh stop    stop the registry this script started (its pid file)
#   images/registry.sh oci     write every image as an OCI layout in .images/oci instead
#                              (`skopeo copy oci:.images/oci:pynomaly/detector:TAG ...`)
# IMAGES_REGISTRY_PORT (default 5000) picks the port; it binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${IMAGES_OUT:-$PWD/.images}
PORT=${IMAGES_REGISTRY_PORT:-5000}
export CONTAINERS_CONF=$PWD/images/containers.conf
pidfile=$OUT/registry.pid

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running; then return; fi
  mkdir -p "$OUT/registry"
  cat > "$OUT/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $OUT/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
YML
  setsid /usr/bin/docker-registry serve "$OUT/registry.yml" > "$OUT/registry.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && { echo "registry on 127.0.0.1:$PORT"; return; }
    sleep 0.2
  done
  echo "registry did not answer on 127.0.0.1:$PORT; log: $OUT/registry.log" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  push)
    start
    # shellcheck disable=SC1091
    . "$OUT/images.env"
    for ref in "$DETECTOR_IMAGE" "$OPERATOR_IMAGE" "$REDIS_IMAGE" "$POSTGRES_IMAGE" "$PGBOUNCER_IMAGE"; do
      target="127.0.0.1:$PORT/${ref#localhost/}"
      podman push --quiet --tls-verify=false "$ref" "docker://$target"
      echo "pushed $target"
    done ;;
  oci)
    # shellcheck disable=SC1091
    . "$OUT/images.env"
    for ref in "$DETECTOR_IMAGE" "$OPERATOR_IMAGE" "$REDIS_IMAGE" "$POSTGRES_IMAGE" "$PGBOUNCER_IMAGE"; do
      name=${ref#localhost/}
      skopeo copy --quiet "containers-storage:$ref" "oci:$OUT/oci:$name"
      echo "wrote oci:$OUT/oci:$name"
    done ;;
  stop)
    if running; then kill "$(cat "$pidfile")"; fi
    rm -f "$pidfile" ;;
  *) echo "usage: $0 start|push|stop|oci" >&2; exit 2 ;;
esac
