#!/usr/bin/env bash
# Argo CD (application controller + repo server) and kustomize for the GitOps tests
# (tests/gitops, e2e/README.md "Argo CD").
#
#   e2e/argocd.sh build   build .cluster/bin/{argocd,kustomize} if sources changed, link the
#                         binary's names, copy Argo CD's CRDs from the module to .cluster/bin/argocd-crds/
#   e2e/argocd.sh version print the Argo CD version the binary is built from (e.g. v3.2.11)
#
# Builds are niced (the machine is shared), use the default Go module and build caches, and
# the same offline-friendly settings as e2e/cluster.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.cluster/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

log() { echo "argocd: $*" >&2; }

stale() {
  local out="$1"; shift
  [[ ! -x "$out" ]] && return 0
  [[ -n "$(find "$@" -newer "$out" \( -name '*.go' -o -name go.mod -o -name go.sum \) -print -quit)" ]]
}

version() { (cd "$ROOT/e2e/argocd" && "$GO" list -m -f '{{.Version}}' github.com/argoproj/argo-cd/v3); }

build() {
  mkdir -p "$BIN"
  local ad="$ROOT/e2e/argocd" kz="$ROOT/e2e/kustomize" v pkg=github.com/argoproj/argo-cd/v3/common
  v="$(version)"
  if stale "$BIN/argocd" "$ad"; then
    log "building Argo CD $v (cold build ~10-25 min on 2 cores; seconds when GOCACHE is warm)..."
    local start=$SECONDS
    (cd "$ad" && nice -n 10 "$GO" build -trimpath -p 2 \
      -ldflags "-s -w -X $pkg.version=${v#v} -X $pkg.gitTag=$v -X $pkg.gitCommit=module-$v -X $pkg.gitTreeState=clean" \
      -o "$BIN/argocd.tmp.$$" .)
    mv "$BIN/argocd.tmp.$$" "$BIN/argocd"
    log "Argo CD built in $((SECONDS - start))s"
  fi
  local name
  for name in argocd-application-controller argocd-repo-server argocd-git-ask-pass; do
    ln -sfn argocd "$BIN/$name"
  done
  if stale "$BIN/kustomize" "$kz"; then
    log "building kustomize (cold build ~1-3 min; seconds when GOCACHE is warm)..."
    local start=$SECONDS
    (cd "$kz" && nice -n 10 "$GO" build -trimpath -p 2 -ldflags "-s -w" -o "$BIN/kustomize.tmp.$$" sigs.k8s.io/kustomize/kustomize/v5)
    mv "$BIN/kustomize.tmp.$$" "$BIN/kustomize"
    log "kustomize built in $((SECONDS - start))s"
  fi
  # Argo CD's own CRDs (Application, AppProject), from the very module the binary is built
  # from: the schema always matches the controller, nothing is downloaded.
  local dir crds="$BIN/argocd-crds"
  dir="$(cd "$ad" && "$GO" list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)"
  mkdir -p "$crds"
  for name in application-crd.yaml appproject-crd.yaml; do
    cmp -s "$dir/manifests/crds/$name" "$crds/$name" || install -m 0644 "$dir/manifests/crds/$name" "$crds/$name"
  done
  echo "$v" > "$BIN/argocd-version"
}

case "${1:-}" in
  build) build ;;
  version) version ;;
  *) echo "usage: $0 build|version" >&2; exit 2 ;;
esac
