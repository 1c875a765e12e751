#!/usr/bin/env bash
# Hands the project's images to the real node (e2e/node/README.md): one Docker archive of the
# images `make images` built, for the node's containerd to import (no image is ever pulled).
#
#   scripts/realnode-images.sh archive   write .cluster/images/pynomaly-$IMAGES_TAG.tar (once per tag)
#                                        and print its path
#   scripts/realnode-images.sh import    import that archive into the running node's containerd
#                                        unless every image is there already
#
# IMAGES_ENV (default .images/images.env, written by images/build.sh) names the images:
# DETECTOR_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE, PGBOUNCER_IMAGE (tags VERSION-COMMIT).
# CLUSTER_DIR (default .cluster) is the cluster whose node imports them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGES_ENV="${IMAGES_ENV:-$ROOT/.images/images.env}"
DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
OUT="$ROOT/.cluster/images"

[[ -s "$IMAGES_ENV" ]] || { echo "realnode-images: $IMAGES_ENV missing: run make images first" >&2; exit 1; }
# shellcheck disable=SC1090
. "$IMAGES_ENV"
refs=("$DETECTOR_IMAGE" "$REDIS_IMAGE" "$POSTGRES_IMAGE" "$PGBOUNCER_IMAGE")
archive="$OUT/pynomaly-$IMAGES_TAG.tar"

write_archive() {
  if [[ -s "$archive" && "$archive" -nt "$IMAGES_ENV" ]]; then return; fi
  mkdir -p "$OUT"
  # One archive, the current tag's: each commit's images are a new ~1 GB tag, and the node
  # shares this disk (the kubelet evicts when it runs low).
  find "$OUT" -maxdepth 1 -name 'pynomaly-*.tar*' ! -name "$(basename "$archive")" -delete
  echo "realnode-images: writing $archive (${refs[*]})" >&2
  rm -f "$archive.tmp"
  nice -n 10 podman save --quiet -m --format docker-archive -o "$archive.tmp" "${refs[@]}"
  mv "$archive.tmp" "$archive"
}

case "${1:-}" in
  archive) write_archive; echo "$archive" ;;
  import)
    sock="$DIR/node/containerd/containerd.sock"
    [[ -S "$sock" ]] || { echo "realnode-images: no real node runs in $DIR" >&2; exit 1; }
    have="$(ctr --address "$sock" -n k8s.io images ls -q)"
    missing=0
    for r in "${refs[@]}"; do grep -qxF "$r" <<<"$have" || missing=1; done
    if (( missing )); then
      write_archive
      echo "realnode-images: importing $archive" >&2
      ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
    fi ;;
  *) echo "usage: $0 archive|import" >&2; exit 2 ;;
esac
