#!/usr/bin/env bash
# Local Kubernetes control plane for tests and the demo (see e2e/README.md).
#
#   e2e/cluster.sh build     build .cluster/bin/{controlplane,kwok,kubectl} if sources changed
#   e2e/cluster.sh start     build if needed, start in the background, wait for READY
#   e2e/cluster.sh stop      stop the process group and remove the state (not the binaries)
#   e2e/cluster.sh restart   stop and start again keeping etcd data, ports and certificates
#   e2e/cluster.sh status    say whether it runs and answers /readyz
#   e2e/cluster.sh build-node   build the real node's binaries and images (e2e/node/README.md)
#
# CLUSTER_DIR (default <repo>/.cluster) is where state lives; binaries always
# go to <repo>/.cluster/bin. CLUSTER_READY_TIMEOUT (seconds, default 120).
# REAL_NODE=1: start also starts a real node (containerd, kubelet, kube-proxy,
# CoreDNS, metrics-server; needs root and scripts/node-deps.sh) registered as
# c5.2xlarge, and the KWOK nodes become CLUSTER_NODES (default
# c5.4xlarge=1,m5.large=2: no fake c5.2xlarge, so pods that ask for that type
# run for real). NODE_METRICS_SERVER=false starts the node without metrics-server. stop always stops a node that runs and cleans up after one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.cluster/bin"
DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
READY_TIMEOUT="${CLUSTER_READY_TIMEOUT:-120}"
REAL_NODE="${REAL_NODE:-}"
[[ "$REAL_NODE" == 0 ]] && REAL_NODE=""
CLUSTER_NODES="${CLUSTER_NODES:-${REAL_NODE:+c5.4xlarge=1,m5.large=2}}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

# Reproducible, offline-friendly Go builds: our own modules only (no go.work),
# the committed go.sum, no cgo (static binaries), the local toolchain.
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

log() { echo "cluster: $*" >&2; }

# stale OUT DIR...: true when OUT is missing or older than any source under DIR.
stale() {
  local out="$1"; shift
  [[ ! -x "$out" ]] && return 0
  [[ -n "$(find "$@" -newer "$out" \( -name '*.go' -o -name go.mod -o -name go.sum \) -print -quit)" ]]
}

build() {
  mkdir -p "$BIN"
  local cp="$ROOT/e2e/controlplane" kw="$ROOT/e2e/kwok"
  local version minor ldflags pkg=k8s.io/component-base/version
  version="$(cd "$cp" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)"   # e.g. v1.35.4
  minor="${version#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  if stale "$BIN/controlplane" "$cp" "$ROOT/e2e/clusterkit"; then
    log "building control plane $version (cold build ~4-12 min on 2 cores; seconds when GOCACHE is warm)..."
    local start=$SECONDS
    (cd "$cp" && "$GO" build -trimpath -p 2 -ldflags "$ldflags" -o "$BIN/controlplane.tmp.$$" . )
    mv "$BIN/controlplane.tmp.$$" "$BIN/controlplane"
    log "control plane built in $((SECONDS - start))s"
  fi
  # kubectl of the same Kubernetes version (go.mod's `tool` line), so the client
  # never depends on whatever kubectl, if any, the machine has on PATH.
  if stale "$BIN/kubectl" "$cp/go.mod"; then
    log "building kubectl $version (cold build ~1-2 min more; seconds when GOCACHE is warm)..."
    local start=$SECONDS
    (cd "$cp" && "$GO" build -trimpath -p 2 -ldflags "$ldflags" -o "$BIN/kubectl.tmp.$$" k8s.io/kubernetes/cmd/kubectl )
    mv "$BIN/kubectl.tmp.$$" "$BIN/kubectl"
    log "kubectl built in $((SECONDS - start))s"
  fi
  if stale "$BIN/kwok" "$kw"; then
    log "building kwok (cold build ~1-3 min; seconds when GOCACHE is warm)..."
    local start=$SECONDS
    (cd "$kw" && "$GO" build -trimpath -p 2 -ldflags "-s -w" -o "$BIN/kwok.tmp.$$" sigs.k8s.io/kwok/cmd/kwok)
    mv "$BIN/kwok.tmp.$$" "$BIN/kwok"
    log "kwok built in $((SECONDS - start))s"
  fi
  # KWOK's stages (committed, derived from the module's "fast" ones): nodes
  # become Ready, pods Running/Ready, Job pods Succeeded 1 s later, deleted
  # pods go away. Copied whenever they differ; atomic for clusters starting now.
  if ! cmp -s "$kw/stages.yaml" "$BIN/kwok-stages.yaml"; then
    cp "$kw/stages.yaml" "$BIN/kwok-stages.yaml.tmp.$$"
    mv "$BIN/kwok-stages.yaml.tmp.$$" "$BIN/kwok-stages.yaml"
    log "KWOK stages updated from e2e/kwok/stages.yaml (running clusters need a restart)"
  fi
}

# build_node: the real node's binaries, all from Go modules in this repo, at
# nice 10 (the machine is shared): `node` (kubelet + kube-proxy of the control
# plane's Kubernetes version, the supervisor, the image packer), CoreDNS,
# metrics-server, and two static programs packed as OCI archives for
# containerd: the sandbox (pause) image and the realnode tests' image.
build_node() {
  mkdir -p "$BIN"
  local nd="$ROOT/e2e/node" version minor ldflags pkg=k8s.io/component-base/version
  version="$(cd "$nd" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)"
  minor="${version#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  gobuild() { # gobuild OUT MODULE_DIR LDFLAGS PACKAGE
    local start=$SECONDS
    log "building $(basename "$1") (cold: minutes on 2 cores; seconds when GOCACHE is warm)..."
    (cd "$2" && nice -n 10 "$GO" build -trimpath -p 2 -ldflags "$3" -o "$1.tmp.$$" "$4")
    mv "$1.tmp.$$" "$1"
    log "$(basename "$1") built in $((SECONDS - start))s"
  }
  stale "$BIN/node" "$nd" "$ROOT/e2e/clusterkit" && gobuild "$BIN/node" "$nd" "$ldflags" .
  stale "$BIN/pause" "$nd/pause" && gobuild "$BIN/pause" "$nd" "-s -w" ./pause
  stale "$BIN/testbox" "$nd/testbox" && gobuild "$BIN/testbox" "$nd" "-s -w" ./testbox
  stale "$BIN/coredns" "$ROOT/e2e/coredns" && gobuild "$BIN/coredns" "$ROOT/e2e/coredns" "-s -w" .
  if stale "$BIN/metrics-server" "$ROOT/e2e/metrics-server"; then
    # metrics-server v0.8.0's generated OpenAPI definitions predate the v0.35 libraries'
    # model names. The build uses a copy of the module (in a temp dir, through -modfile
    # with a replace) whose generated file is e2e/metrics-server/openapi's (gen-openapi.sh).
    local ms="$ROOT/e2e/metrics-server" msdir tmp
    # go list -m reports no Dir for a module not yet in the module cache (a new machine):
    # download it first, or the copy below gets an empty path.
    (cd "$ms" && "$GO" mod download sigs.k8s.io/metrics-server)
    msdir="$(cd "$ms" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/metrics-server)"
    [[ -n "$msdir" ]] || { echo "cluster: no module directory for sigs.k8s.io/metrics-server" >&2; exit 1; }
    tmp="$(mktemp -d)"
    cp -r "$msdir" "$tmp/metrics-server"
    chmod -R u+w "$tmp/metrics-server"
    cp "$ms/openapi/zz_generated.openapi.go" "$tmp/metrics-server/pkg/api/generated/openapi/zz_generated.openapi.go"
    cp "$ms/go.mod" "$tmp/go.mod"
    cp "$ms/go.sum" "$tmp/go.sum"
    echo "replace sigs.k8s.io/metrics-server => $tmp/metrics-server" >> "$tmp/go.mod"
    GOFLAGS="$GOFLAGS -modfile=$tmp/go.mod" gobuild "$BIN/metrics-server" "$ms" "-s -w" sigs.k8s.io/metrics-server/cmd/metrics-server
    rm -rf "$tmp"
  fi
  if [[ ! -s "$BIN/pause.tar" || "$BIN/pause" -nt "$BIN/pause.tar" || "$BIN/node" -nt "$BIN/pause.tar" ]]; then
    "$BIN/node" image --out "$BIN/pause.tar" --name pynomaly.local/pause:1 --entrypoint /pause "$BIN/pause=/pause"
  fi
  if [[ ! -s "$BIN/testbox.tar" || "$BIN/testbox" -nt "$BIN/testbox.tar" || "$BIN/node" -nt "$BIN/testbox.tar" ]]; then
    "$BIN/node" image --out "$BIN/testbox.tar" --name pynomaly.local/testbox:1 --user 10001:10001 \
      --entrypoint "/testbox serve" "$BIN/testbox=/testbox"
  fi
}

node_pid() { [[ -s "$DIR/node.pid" ]] && cat "$DIR/node.pid"; }
node_alive() { local p; p="$(node_pid)" && kill -0 "$p" 2>/dev/null; }

# start_node runs the node supervisor in its own process group; it prints
# READY once the Node is Ready and kube-proxy, CoreDNS and metrics-server serve.
start_node() {
  if node_alive; then log "real node already running (pid $(node_pid))"; return 0; fi
  build_node
  mkdir -p "$DIR/logs"
  : > "$DIR/logs/node.out"
  log "starting the real node (state in $DIR/node, log $DIR/logs/node.log)..."
  setsid "$BIN/node" run --dir "$DIR/node" --cluster-dir "$DIR" --images "$BIN/testbox.tar${NODE_IMAGES:+,$NODE_IMAGES}" \
    --ready-timeout "${NODE_READY_TIMEOUT:-180}s" --metrics-server="${NODE_METRICS_SERVER:-true}" >"$DIR/logs/node.out" 2>>"$DIR/logs/node.log" </dev/null &
  echo $! > "$DIR/node.pid"
  until grep -q '^READY ' "$DIR/logs/node.out"; do
    if ! node_alive; then
      log "real node exited before READY; last log lines:"
      tail -n 30 "$DIR/logs/node.log" >&2
      rm -f "$DIR/node.pid"
      return 1
    fi
    sleep 0.2
  done
  log "real node $(grep '^READY ' "$DIR/logs/node.out")"
}

# stop_node: SIGTERM lets the supervisor tear down in order (pods through CRI,
# then iptables, mounts, bridge, cgroups); SIGKILL after 120 s, then `node
# cleanup` undoes what a dead supervisor left.
stop_node() {
  local p
  if p="$(node_pid)" && kill -0 "$p" 2>/dev/null; then
    log "stopping the real node (pid $p)..."
    kill -TERM "$p" 2>/dev/null || true
    local deadline=$((SECONDS + 120))
    while kill -0 "$p" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    kill -KILL -- "-$p" 2>/dev/null || true
  fi
  rm -f "$DIR/node.pid"
  if [[ -d "$DIR/node" ]]; then
    "$BIN/node" cleanup --dir "$DIR/node" || true
    if grep -q " $DIR/node[/ ]" /proc/self/mountinfo; then
      log "mounts remain under $DIR/node; not removing it"
      return 1
    fi
    rm -rf "$DIR/node"
  fi
}

pid() { [[ -s "$DIR/controlplane.pid" ]] && cat "$DIR/controlplane.pid"; }
alive() { local p; p="$(pid)" && kill -0 "$p" 2>/dev/null; }

readyz() {
  [[ -s "$DIR/kubeconfig" ]] && "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --request-timeout=2s get --raw /readyz >/dev/null 2>&1
}

start() {
  if alive && readyz; then
    log "already running (pid $(pid))"
    if [[ -n "$REAL_NODE" ]]; then start_node; fi
    echo "$DIR/kubeconfig"
    return 0
  fi
  build
  mkdir -p "$DIR/logs"
  : > "$DIR/logs/controlplane.out"
  log "starting control plane (state in $DIR)..."
  # setsid: the control plane leads its own process group, which its
  # scheduler and KWOK children share, so stop can signal the whole group.
  setsid "$BIN/controlplane" run --dir "$DIR" --ready-timeout "${READY_TIMEOUT}s" ${CLUSTER_NODES:+--nodes "$CLUSTER_NODES"} \
    >"$DIR/logs/controlplane.out" 2>>"$DIR/logs/controlplane.log" </dev/null &
  echo $! > "$DIR/controlplane.pid"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until grep -q '^READY ' "$DIR/logs/controlplane.out"; do
    if ! alive; then
      log "control plane exited before READY; last log lines:"
      tail -n 30 "$DIR/logs/controlplane.log" >&2
      return 1
    fi
    if (( SECONDS > deadline )); then
      log "not READY after ${READY_TIMEOUT}s; stopping it (log: $DIR/logs/controlplane.log)"
      stop_processes
      return 1
    fi
    sleep 0.2
  done
  log "$(grep '^READY ' "$DIR/logs/controlplane.out") pid $(pid)"
  if [[ -n "$REAL_NODE" ]]; then start_node; fi
  echo "$DIR/kubeconfig"
}

# stop_processes sends SIGTERM to the process group, then SIGKILL after 20 s.
stop_processes() {
  local p
  p="$(pid)" || { log "not running"; return 0; }
  if kill -0 "$p" 2>/dev/null; then
    log "stopping pid $p and its process group..."
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$p" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    kill -KILL -- "-$p" 2>/dev/null || true
  fi
  rm -f "$DIR/controlplane.pid"
}

stop() {
  stop_node
  stop_processes
  # Keep .cluster/bin: only state goes.
  rm -rf "$DIR/etcd" "$DIR/pki" "$DIR/logs" "$DIR/kubeconfig" "$DIR/ports.json" "$DIR/pids" "$DIR/pv"
  log "stopped; state removed"
}

status() {
  if alive; then
    if readyz; then log "running (pid $(pid)), ready: $DIR/kubeconfig"; else log "running (pid $(pid)), not ready"; return 1; fi
  else
    log "not running"; return 1
  fi
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  restart) stop_node; stop_processes; start ;;
  build-node) build_node ;;
  # The node's Go unit tests: what the teardown sweeps from iptables (stdlib only: seconds).
  test-node) (cd "$ROOT/e2e/node" && nice -n 10 "$GO" test -trimpath -count=1 ./iptables) ;;
  status) status ;;
  *) echo "usage: $0 build|build-node|test-node|start|stop|restart|status" >&2; exit 2 ;;
esac
