#!/usr/bin/env bash
# The first five minutes: `make demo` runs `scripts/demo.sh up`, `make demo-down` runs `down`.
#
#   up    where the machine can (root, make node-deps images-deps images node; DEMO_REAL_NODE=0
#         opts out), run the sample on real pods: a cluster with a real node, the operator locally,
#         the sample through scripts/realnode_overlay.py, fit and score through the Service's
#         ClusterIP. Otherwise (and it says why): start the local control plane, install the CRD, run the operator locally, apply the
#         minimal sample, wait for Ready, start Redis + PostgreSQL + PgBouncer on 127.0.0.1, run
#         the detector service with the configuration the operator rendered, fit a model on
#         manifests/samples/data/training.csv and score manifests/samples/data/score.csv.
#   down  stop everything `up` started (by the PIDs it recorded) and keep the logs.
#   status  show what is running.
#
# Every step is a function, every wait has a deadline and says what it waited for, and all
# state (PIDs, logs, kubeconfig, data directories) lives under .demo/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${DEMO_DIR:-$ROOT/.demo}"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CONTROLPLANE="${CONTROLPLANE:-$ROOT/.cluster/bin/controlplane}"
NAMESPACE="${DEMO_NAMESPACE:-pynomaly-demo}"
SAMPLE="${DEMO_SAMPLE:-$ROOT/manifests/samples/minimal.yaml}"
DATA="$ROOT/manifests/samples/data"
export KUBECONFIG="$DEMO/cluster/kubeconfig"
# kubectl built with the control plane (same Kubernetes version) comes first on PATH.
export PATH="$ROOT/.cluster/bin:$PATH"

STARTED=$SECONDS
STEP_STARTED=$SECONDS

# ---- output and waiting -------------------------------------------------------------------

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() {
  STEP_STARTED=$SECONDS
  bold "==> [$(elapsed)] $*"
}
done_step() { echo "    ok ($((SECONDS - STEP_STARTED))s)"; }
elapsed() { printf '%3ds' "$((SECONDS - STARTED))"; }
die() {
  printf '\033[31mdemo: %s\033[0m\n' "$*" >&2
  echo "logs are in $DEMO/*.log; stop everything with: make demo-down" >&2
  exit 1
}

# wait_for DEADLINE_SECONDS WHAT COMMAND...: run COMMAND every second until it succeeds; every 5 s
# say what it waits for (or COMMAND's last output line when WAIT_SHOW is set). With WAIT_PROCESS=NAME
# it gives up at once when that background process has exited, showing its log's tail.
wait_for() {
  local deadline=$1 what=$2
  shift 2
  local until=$((SECONDS + deadline)) last="" tick=0
  while true; do
    if last="$("$@" 2>&1)"; then
      [ -n "${WAIT_SHOW:-}" ] && echo "    $last"
      return 0
    fi
    if [ -n "${WAIT_PROCESS:-}" ] && ! running "$WAIT_PROCESS"; then
      echo
      tail -n 15 "$DEMO/$WAIT_PROCESS.log" | sed 's/^/    | /' >&2
      die "$WAIT_PROCESS exited while waiting for $what (log: .demo/$WAIT_PROCESS.log)"
    fi
    if [ $SECONDS -ge $until ]; then
      echo
      die "gave up after ${deadline}s waiting for $what${last:+ (last: ${last##*$'\n'})}"
    fi
    tick=$((tick + 1))
    if [ $((tick % 5)) -eq 0 ]; then
      if [ -n "${WAIT_SHOW:-}" ] && [ -n "$last" ]; then
        echo "    ... ${last##*$'\n'}"
      else
        printf '    ... waiting for %s (%ds)\n' "$what" $((SECONDS - STEP_STARTED))
      fi
    fi
    sleep 1
  done
}

# start_bg NAME COMMAND...: start COMMAND in its own process group, log to .demo/NAME.log,
# remember its PID in .demo/NAME.pid.
start_bg() {
  local name=$1
  shift
  setsid "$@" >"$DEMO/$name.log" 2>&1 < /dev/null &
  echo $! >"$DEMO/$name.pid"
}

running() { [ -f "$DEMO/$1.pid" ] && kill -0 "$(cat "$DEMO/$1.pid")" 2>/dev/null; }

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- steps -----------------------------------------------------------------------------------

check_prerequisites() {
  step "checking prerequisites (make setup installs what is missing)"
  local missing=()
  [ -x "$PY" ] || missing+=(".venv (make install)")
  [ -x "$CONTROLPLANE" ] || missing+=("control plane binary $CONTROLPLANE (make controlplane)")
  command -v kubectl >/dev/null || missing+=("kubectl (make controlplane)")
  command -v curl >/dev/null || missing+=("curl")
  command -v redis-server >/dev/null || missing+=("redis-server (make system-deps)")
  command -v pgbouncer >/dev/null || missing+=("pgbouncer (make system-deps)")
  [ -x "$VENV/bin/pynomaly-operator" ] || missing+=("pynomaly-operator console script (make install)")
  [ -x "$VENV/bin/pynomaly-detector" ] || missing+=("pynomaly-detector console script (make install)")
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}"
  mkdir -p "$DEMO"
  done_step
}

start_cluster() {
  step "starting the local Kubernetes control plane (API server, scheduler, KWOK fake nodes)"
  if running controlplane && kubectl get --raw /readyz >/dev/null 2>&1; then
    echo "    already running"
  else
    mkdir -p "$DEMO/cluster"
    start_bg controlplane "$CONTROLPLANE" run --dir "$DEMO/cluster"
    WAIT_PROCESS=controlplane wait_for 150 "the control plane to print READY" grep -q '^READY' "$DEMO/controlplane.log"
  fi
  wait_for 30 "the API server to answer" kubectl get --raw /readyz
  kubectl get nodes -L node.kubernetes.io/instance-type --no-headers | sed 's/^/    /'
  done_step
}

install_crd() {
  step "installing the AnomalyDetector CRD (crds/)"
  kubectl apply --server-side --force-conflicts -k "$ROOT/crds" | sed 's/^/    /'
  wait_for 60 "the CRD to be established" \
    kubectl wait --for condition=Established --timeout=5s crd/anomalydetectors.pynomaly.io
  done_step
}

start_operator() {
  step "running the operator locally (pynomaly-operator run, log: .demo/operator.log)"
  if running operator; then
    echo "    already running"
  else
    local port
    port=$(free_port)
    echo "$port" >"$DEMO/operator.port"
    start_bg operator "$VENV/bin/pynomaly-operator" run --all-namespaces --standalone \
      "--liveness=http://127.0.0.1:$port/healthz"
  fi
  local port
  port=$(cat "$DEMO/operator.port")
  WAIT_PROCESS=operator wait_for 60 "the operator's liveness endpoint" curl -fsS "http://127.0.0.1:$port/healthz"
  running operator || die "the operator exited; see .demo/operator.log"
  done_step
}

# One line describing the detector's status, e.g. "phase=Progressing Ready=False: 1/3 pods".
detector_status() {
  kubectl get anomalydetector "$DETECTOR" -n "$NAMESPACE" -o json \
    | "$PY" "$ROOT/scripts/demo_data.py" status
}

apply_sample() {
  DETECTOR=$("$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "AnomalyDetector"]
print(docs[0]["metadata"]["name"])' "$SAMPLE")
  step "applying ${SAMPLE#"$ROOT"/} (AnomalyDetector $NAMESPACE/$DETECTOR) and waiting for Ready"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n "$NAMESPACE" -f "$SAMPLE" | sed 's/^/    /'
  WAIT_SHOW=1 wait_for 180 "AnomalyDetector $DETECTOR to become Ready" detector_status
  kubectl get deploy,statefulset,svc,hpa,pdb -n "$NAMESPACE" \
    -l "app.kubernetes.io/instance=$DETECTOR" 2>/dev/null | sed 's/^/    /'
  done_step
}

start_stores() {
  step "starting Redis, PostgreSQL 15 and PgBouncer on 127.0.0.1 (log: .demo/stores.log)"
  if running stores && [ -s "$DEMO/stores.env" ]; then
    echo "    already running"
  else
    rm -f "$DEMO/stores.env"
    start_bg stores "$PY" "$ROOT/scripts/demo_stores.py" --dir "$DEMO/stores" \
      --env-file "$DEMO/stores.env"
    WAIT_PROCESS=stores wait_for 120 "Redis, PostgreSQL and PgBouncer" test -s "$DEMO/stores.env"
  fi
  sed -e 's/PASSWORD=.*/PASSWORD=********/' -e 's/^/    /' "$DEMO/stores.env"
  done_step
}

# The detector's environment: the ConfigMap the operator rendered (every key is a setting), then
# what differs on a laptop: loopback address, free ports, the local stores, fewer workers.
write_service_env() {
  local config="$DETECTOR-config" port
  port=$(free_port)
  kubectl get configmap "$config" -n "$NAMESPACE" -o json >"$DEMO/configmap.json" \
    || die "cannot read ConfigMap $NAMESPACE/$config"
  kubectl get deployment "$DETECTOR" -n "$NAMESPACE" -o json >"$DEMO/deployment.json" \
    || die "cannot read Deployment $NAMESPACE/$DETECTOR"
  # ConfigMap keys first, then the container's literal env entries (Redis/database addresses the
  # operator renders there); secretKeyRef entries are replaced by the local stores below.
  "$PY" - "$DEMO/configmap.json" "$DEMO/deployment.json" >"$DEMO/service.env" <<'PYEOF'
import json, shlex, sys
config = json.load(open(sys.argv[1])).get("data") or {}
pod = json.load(open(sys.argv[2]))["spec"]["template"]["spec"]
env = {k: v for k, v in config.items() if k.startswith("PYNOMALY_")}
for container in pod["containers"]:
    for entry in container.get("env", []):
        if entry["name"].startswith("PYNOMALY_") and "value" in entry:
            env[entry["name"]] = entry["value"]
for key, value in sorted(env.items()):
    print(f"{key}={shlex.quote(value)}")
PYEOF
  local signing_key
  signing_key=$(kubectl get secret "$DETECTOR-signing-key" -n "$NAMESPACE" \
    -o jsonpath='{.data.signing-key}' 2>/dev/null | base64 -d || true)
  [ -n "$signing_key" ] || signing_key=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
  kubectl get secret "$DETECTOR-api-token" -n "$NAMESPACE" -o jsonpath='{.data.token}' \
    2>/dev/null | base64 -d >"$DEMO/api-token" || true
  [ -s "$DEMO/api-token" ] || "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$DEMO/api-token"
  chmod 600 "$DEMO/api-token"
  {
    echo "# overrides for the laptop: loopback, free port, one worker, local stores"
    echo "PYNOMALY_HOST=127.0.0.1"
    echo "PYNOMALY_PORT=$port"
    echo "PYNOMALY_METRICS_PORT=0"
    echo "PYNOMALY_WORKERS=1"
    echo "PYNOMALY_MODEL_DIR=$DEMO/models"
    # In a cluster the training CSV is a mounted ConfigMap key; here it is the repo's sample.
    echo "PYNOMALY_MODEL_TRAINING_PATH=$DATA/training.csv"
    echo "PYNOMALY_MODEL_TRAINING_URL="
    echo "PYNOMALY_ARTIFACT_SIGNING_KEY=$signing_key"
    # In a cluster the API token file is the mounted Secret <name>-api-token; here a copy of it.
    echo "PYNOMALY_API_TOKEN_FILE=$DEMO/api-token"
    cat "$DEMO/stores.env"
  } >>"$DEMO/service.env"
  echo "$port" >"$DEMO/service.port"
}

# with_service_env COMMAND...: run COMMAND with .demo/service.env exported.
with_service_env() {
  (set -a && . "$DEMO/service.env" && set +a && exec "$@")
}

start_service() {
  step "starting the detector service with the operator's configuration (log: .demo/detector.log)"
  if running detector; then
    echo "    already running"
  else
    write_service_env
    echo "    $(grep -c '^PYNOMALY_' "$DEMO/service.env") settings from ConfigMap" \
      "$NAMESPACE/$DETECTOR-config and the Deployment, local overrides last (.demo/service.env)"
    mkdir -p "$DEMO/models"
    start_bg detector bash -c 'set -a && . "$1" && set +a && exec "$2" serve' _ \
      "$DEMO/service.env" "$VENV/bin/pynomaly-detector"
  fi
  URL="http://127.0.0.1:$(cat "$DEMO/service.port")"
  WAIT_PROCESS=detector wait_for 90 "the detector service at $URL/readyz" curl -fsS "$URL/readyz"
  done_step
}

fit_and_score() {
  local model
  model=$(with_service_env printenv PYNOMALY_MODEL_NAME || true)
  model=${model:-$DETECTOR}
  step "fitting model '$model' over HTTP: PUT /v1/models/$model with manifests/samples/data/training.csv (400 rows)"
  echo "    (the service already fitted the declared model at start, see .demo/detector.log; this adds a version)"
  with_service_env "$PY" "$ROOT/scripts/demo_data.py" fit-body "$DATA/training.csv" \
    >"$DEMO/fit.json"
  # Model management needs the API token (Secret $DETECTOR-api-token, key token); the scoring
  # below does not (spec.network.scoringAuth: none).
  echo "    token: kubectl get secret $DETECTOR-api-token -n $NAMESPACE -o jsonpath='{.data.token}' | base64 -d"
  curl -sS --fail-with-body --max-time 120 -X PUT -H 'content-type: application/json' \
    -H "authorization: Bearer $(head -n1 "$DEMO/api-token")" \
    --data @"$DEMO/fit.json" "$URL/v1/models/$model" >"$DEMO/fit-response.json" \
    || die "fit failed: $(cat "$DEMO/fit-response.json" 2>/dev/null)"
  "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1]))
t = r.get("threshold")
r["threshold"] = "?" if t is None else f"{round(float(t), 4) + 0.0:.4f}"
print("    fitted:", ", ".join(f"{k}={r[k]}" for k in ("name", "algorithm", "version", "threshold") if k in r))' \
    "$DEMO/fit-response.json"
  done_step

  step "scoring manifests/samples/data/score.csv with curl"
  "$PY" "$ROOT/scripts/demo_data.py" detect-body "$DATA/score.csv" >"$DEMO/score.json"
  echo "    curl -X POST $URL/v1/models/$model/detect -d '{\"instances\": [[75.96, 10.3, 5], ...]}'"
  curl -sS --fail-with-body --max-time 60 -X POST -H 'content-type: application/json' \
    --data @"$DEMO/score.json" "$URL/v1/models/$model/detect" >"$DEMO/score-response.json" \
    || die "scoring failed: $(cat "$DEMO/score-response.json" 2>/dev/null)"
  "$PY" "$ROOT/scripts/demo_data.py" report "$DATA/score.csv" "$DEMO/score-response.json" \
    || die "the anomalies found differ from the expected ones (see above)"
  done_step
}

explain_alert() {
  local model=calibrated
  step "an explained, calibrated alert: model '$model' (ECOD, alert_rate 0.01), detect with explain"
  "$PY" "$ROOT/scripts/demo_data.py" calibrated-fit-body "$DATA/training.csv" \
    >"$DEMO/calibrated-fit.json"
  curl -sS --fail-with-body --max-time 120 -X PUT -H 'content-type: application/json' \
    -H "authorization: Bearer $(head -n1 "$DEMO/api-token")" \
    --data @"$DEMO/calibrated-fit.json" "$URL/v1/models/$model" \
    >"$DEMO/calibrated-fit-response.json" \
    || die "calibrated fit failed: $(cat "$DEMO/calibrated-fit-response.json" 2>/dev/null)"
  "$PY" "$ROOT/scripts/demo_data.py" explain-body "$DATA/score.csv" >"$DEMO/explain.json"
  echo "    curl -X POST $URL/v1/models/$model/detect -d '{\"instances\": [...], \"explain\": true}'"
  curl -sS --fail-with-body --max-time 60 -X POST -H 'content-type: application/json' \
    --data @"$DEMO/explain.json" "$URL/v1/models/$model/detect" >"$DEMO/explain-response.json" \
    || die "explained scoring failed: $(cat "$DEMO/explain-response.json" 2>/dev/null)"
  "$PY" "$ROOT/scripts/demo_data.py" explained "$DATA/score.csv" "$DEMO/explain-response.json" \
    || die "an alert came without an explanation (see above)"
  done_step
}

# ---- the real node (make cluster REAL_NODE=1; e2e/node/README.md) -----------------------------

# real_node_unavailable prints why this machine cannot run the sample on real pods (nothing when
# it can): root, the node's Debian packages, the project's images, no other real node running.
real_node_unavailable() {
  if [ "${DEMO_REAL_NODE:-1}" = 0 ]; then echo "DEMO_REAL_NODE=0"; return; fi
  if [ "$(id -u)" != 0 ]; then echo "the real node needs root (containerd, runc, iptables, mounts)"; return; fi
  local c
  for c in containerd runc ctr iptables-restore podman flock; do
    command -v "$c" >/dev/null || { echo "$c is missing (make node-deps images-deps)"; return; }
  done
  [ -s "$ROOT/.images/images.env" ] || { echo ".images/images.env is missing (make images)"; return; }
  [ -x "$ROOT/.cluster/bin/node" ] || { echo "the node is not built (make node)"; return; }
  if ! (flock -n 9) 9>>/run/pynomaly-real-node.lock; then
    echo "another real node runs on this machine (one per machine)"
  fi
}

start_cluster_real_node() {
  step "starting the local cluster with a real node: control plane, KWOK nodes, containerd + kubelet"
  echo "    (e2e/node/README.md; state and logs in .demo/cluster)"
  : >"$DEMO/real-node"
  CLUSTER_DIR="$DEMO/cluster" REAL_NODE=1 "$ROOT/e2e/cluster.sh" start 2>&1 | sed 's/^/    /' \
    || die "the cluster with a real node did not start (log: .demo/cluster/logs/)"
  CLUSTER_DIR="$DEMO/cluster" "$ROOT/scripts/realnode-images.sh" import 2>&1 | sed 's/^/    /' \
    || die "cannot import the project's images into the node"
  # Every pod of the demo runs for real: the KWOK nodes would only pretend.
  kubectl taint nodes -l type=kwok pynomaly.dev/kwok=fake:NoSchedule --overwrite >/dev/null
  kubectl get nodes -L node.kubernetes.io/instance-type --no-headers | sed 's/^/    /'
  done_step
}

apply_sample_real_node() {
  DETECTOR=$("$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "AnomalyDetector"]
print(docs[0]["metadata"]["name"])' "$SAMPLE")
  step "applying ${SAMPLE#"$ROOT"/} on real pods (AnomalyDetector $NAMESPACE/$DETECTOR, Pod Security restricted)"
  echo "    through scripts/realnode_overlay.py: the images of make images, requests for 2 cores"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$NAMESPACE" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
  "$PY" "$ROOT/scripts/realnode_overlay.py" "$SAMPLE" | kubectl apply -n "$NAMESPACE" -f - | sed 's/^/    /'
  WAIT_SHOW=1 wait_for 900 "AnomalyDetector $DETECTOR to become Ready" detector_status
  kubectl get pods -n "$NAMESPACE" -o wide | sed 's/^/    /'
  # What fit_and_score needs: the model settings the operator rendered and the API token.
  kubectl get configmap "$DETECTOR-config" -n "$NAMESPACE" -o json >"$DEMO/configmap.json"
  "$PY" -c 'import json, shlex, sys
data = json.load(open(sys.argv[1])).get("data") or {}
print("\n".join(f"{k}={shlex.quote(v)}" for k, v in sorted(data.items()) if k.startswith("PYNOMALY_")))' \
    "$DEMO/configmap.json" >"$DEMO/service.env"
  kubectl get secret "$DETECTOR-api-token" -n "$NAMESPACE" -o jsonpath='{.data.token}' | base64 -d >"$DEMO/api-token"
  chmod 600 "$DEMO/api-token"
  local ip port
  ip=$(kubectl get service "$DETECTOR" -n "$NAMESPACE" -o jsonpath='{.spec.clusterIP}')
  port=$(kubectl get service "$DETECTOR" -n "$NAMESPACE" -o jsonpath='{.spec.ports[?(@.name=="http")].port}')
  URL="http://$ip:$port"
  echo "    the Service's ClusterIP answers on this host through kube-proxy: $URL"
  wait_for 60 "$URL/readyz" curl -fsS "$URL/readyz"
  done_step
}

goodbye() {
  bold "==> demo up in $((SECONDS - STARTED))s"
  cat <<EOF
    detector service   $URL   (try: curl $URL/v1/models)
    kubectl            KUBECONFIG=$KUBECONFIG $ROOT/.cluster/bin/kubectl get anomalydetectors -A
    logs               $DEMO/{controlplane,operator,stores,detector}.log
    stop everything    make demo-down
EOF
}

up() {
  check_prerequisites
  local why
  why=$(real_node_unavailable)
  if [ -z "$why" ]; then
    start_cluster_real_node
    install_crd
    start_operator
    apply_sample_real_node
    fit_and_score
    explain_alert
    goodbye
    return
  fi
  echo "    real node: not used ($why); the detector runs as a process on this host"
  start_cluster
  install_crd
  start_operator
  apply_sample
  start_stores
  start_service
  fit_and_score
  explain_alert
  goodbye
}

# ---- down / status ---------------------------------------------------------------------------

stop_one() {
  local name=$1 pid
  [ -f "$DEMO/$name.pid" ] || return 0
  pid=$(cat "$DEMO/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    # Each was started with setsid: signal its process group so children stop too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local until=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $until ]; do sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "    $name did not stop within 30s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "    stopped $name (pid $pid)"
  fi
  rm -f "$DEMO/$name.pid"
}

down() {
  step "stopping the demo"
  for name in detector stores operator controlplane; do stop_one "$name"; done
  if [ -f "$DEMO/real-node" ]; then
    CLUSTER_DIR="$DEMO/cluster" "$ROOT/e2e/cluster.sh" stop 2>&1 | sed 's/^/    /'
    rm -f "$DEMO/real-node"
  fi
  rm -f "$DEMO/stores.env"
  echo "    state and logs kept in $DEMO (rm -rf .demo for a fresh start)"
  done_step
}

status() {
  for name in controlplane operator stores detector; do
    if running "$name"; then echo "$name: running (pid $(cat "$DEMO/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 [up|down|status]" >&2; exit 2 ;;
esac
