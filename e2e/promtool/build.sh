#!/usr/bin/env bash
# Build .cluster/bin/promtool from github.com/prometheus/prometheus (version pinned in
# go.mod next to this script) when it is missing or older than go.mod/go.sum.
# Used by `make promtool` and `make test-ops`; the tests marked `promtool` look for the
# binary at .cluster/bin/promtool (or $PROMTOOL).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.cluster/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

out="$BIN/promtool"
if [[ -x "$out" && ! "$HERE/go.mod" -nt "$out" && ! "$HERE/go.sum" -nt "$out" ]]; then
  exit 0
fi
mkdir -p "$BIN"
version="$(cd "$HERE" && "$GO" list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
echo "promtool: building from prometheus $version (cold: measured 56 min on the shared 2-core box at load ~32; ~45 s when GOCACHE is warm)..." >&2
start=$SECONDS
# remove_all_sd: drop the cloud service-discovery plugins (AWS, Azure, GCE, ...), which
# are most of the compile time; `check rules` and `test rules` use none of them.
(cd "$HERE" && nice -n 10 "$GO" build -trimpath -p 2 -tags remove_all_sd -ldflags "-s -w" \
  -o "$out.tmp.$$" github.com/prometheus/prometheus/cmd/promtool)
mv "$out.tmp.$$" "$out"
echo "promtool: built in $((SECONDS - start))s" >&2
