#!/usr/bin/env bash
# `make images`: builds every image this project ships or runs, here, with podman/buildah and
# no image registry:
#   1. localhost/pynomaly/debian:bookworm   mmdebstrap from the Debian archive apt uses here
#   2. localhost/pynomaly/python:3.11-bookworm   images/python/Dockerfile on (1)
#   3. pynomaly/detector, pynomaly/operator  the repository's Dockerfiles with
#      --build-arg PYTHON_IMAGE=<(2) pinned by digest>
#   4. pynomaly/redis, pynomaly/postgres, pynomaly/pgbouncer  images/<name>/Dockerfile with
#      --build-arg DEBIAN_IMAGE=<(1) pinned by digest>
# then an SBOM per Python image (.images/sbom/) and .images/images.env (the built references,
# read by the image tests). `images/registry.sh push` serves them from a registry on 127.0.0.1,
# `images/registry.sh oci` writes them as an OCI layout (.images/oci).
# Tags: <version>-<commit> (and <version> for the two project images, the operator's defaults).
# Step 1 is skipped when its image exists (IMAGES_REBUILD_BASE=1 forces it: a newer Debian
# point release); the layer cache makes every other step quick when its inputs are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${IMAGES_OUT:-$ROOT/.images}
export CONTAINERS_CONF=$ROOT/images/containers.conf
mkdir -p "$OUT" "$OUT/sbom"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
commit=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- . ':!.images' 2>/dev/null || commit="$commit-dirty"
tag="$version-$commit"
debian=localhost/pynomaly/debian:bookworm
python=localhost/pynomaly/python:3.11-bookworm

log() { printf '== %s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
exists() { podman image exists "$1"; }
digest_ref() {  # name@sha256:... of a local image, to pin a FROM by digest
  local name=${1%:*}
  printf '%s@%s' "$name" "$(podman image inspect --format '{{.Digest}}' "$1")"
}

# What the build containers need from this machine, mounted (never copied into a layer):
# the host's CA bundle and pip configuration (a TLS-inspecting proxy, a package index).
build_mounts=()
[ -f /etc/ssl/certs/ca-certificates.crt ] \
  && build_mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[ -f /etc/pip.conf ] && build_mounts+=(--volume /etc/pip.conf:/etc/pip.conf:ro)

build() {  # build IMAGE_TAGS... -- podman build args...
  local tags=()
  while [ "$1" != "--" ]; do tags+=(--tag "$1"); shift; done
  shift
  nice -n 10 podman build --network host --pull=never --layers --format oci \
    "${build_mounts[@]}" "${tags[@]}" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD)" \
    "$@"
}

# 1. Debian bookworm base from the archive apt uses here (read from /etc/apt at build time).
if [ -n "${IMAGES_REBUILD_BASE:-}" ] || ! exists "$debian"; then
  log "debian base: mmdebstrap"
  python3 images/apt_sources.py bookworm > "$OUT/debian.sources"
  aptopts=()
  while IFS= read -r line; do aptopts+=(--aptopt="$line"); done \
    < <(apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' || true)
  rm -f "$OUT/debian-bookworm.tar"
  nice -n 10 mmdebstrap --quiet --variant=minbase --include=ca-certificates,passwd \
    "${aptopts[@]}" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$OUT/debian-bookworm.tar" "$OUT/debian.sources"
  podman import --quiet --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.title=debian-bookworm-mmdebstrap" \
    "$OUT/debian-bookworm.tar" "$debian" >/dev/null
  rm -f "$OUT/debian-bookworm.tar"
fi
debian_ref=$(digest_ref "$debian")
log "debian base: $debian_ref"

# 2. Python 3.11 runtime base from Debian's packages (the layer cache skips it when unchanged).
log "python base"
build "$python" -- --build-arg "DEBIAN_IMAGE=$debian_ref" -f images/python/Dockerfile images/python
python_ref=$(digest_ref "$python")
log "python base: $python_ref"

# 3. The project's images, from their Dockerfiles unchanged.
log "pynomaly/detector:$tag"
build "pynomaly/detector:$tag" "pynomaly/detector:$version" -- \
  --build-arg "PYTHON_IMAGE=$python_ref" -f detector_service/Dockerfile .
log "pynomaly/operator:$tag"
build "pynomaly/operator:$tag" "pynomaly/operator:$version" -- \
  --build-arg "PYTHON_IMAGE=$python_ref" -f operator/Dockerfile .

# 4. Store images, drop-in for the operator's defaults.
for store in redis postgres pgbouncer; do
  log "pynomaly/$store:$tag"
  build "pynomaly/$store:$tag" -- --build-arg "DEBIAN_IMAGE=$debian_ref" -f "images/$store/Dockerfile" .
done

# SBOMs (CycloneDX) of the Python images, from the distributions installed in their venvs.
for image in detector operator; do
  podman run --rm --network none --read-only --user 10001:10001 --entrypoint python \
    "pynomaly/$image:$tag" -c "$(cat images/sbom.py)" "pynomaly/$image:$tag" \
    > "$OUT/sbom/$image.cdx.json"
done

cat > "$OUT/images.env" <<ENV
# written by images/build.sh: the images \`make images\` built
IMAGES_TAG=$tag
DEBIAN_IMAGE=$debian_ref
PYTHON_IMAGE=$python_ref
DETECTOR_IMAGE=localhost/pynomaly/detector:$tag
OPERATOR_IMAGE=localhost/pynomaly/operator:$tag
REDIS_IMAGE=localhost/pynomaly/redis:$tag
POSTGRES_IMAGE=localhost/pynomaly/postgres:$tag
PGBOUNCER_IMAGE=localhost/pynomaly/pgbouncer:$tag
ENV

log "done: $OUT/images.env"
podman images --filter reference='localhost/pynomaly/*'
