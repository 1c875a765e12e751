"""redis.conf and sentinel.conf text, plus the shell scripts that start Redis pods.

Pure renderers: a ``RedisSpec`` in, file text out. The builders put the text into a
ConfigMap; the real-process tests start ``redis-server`` from the very same text with
local ports and directories passed as keyword options. No password is ever rendered here:
the start scripts append ``requirepass`` / ``masterauth`` / ``sentinel auth-pass`` from the
environment (a ``secretKeyRef``) to a copy in an emptyDir, because ConfigMaps are not secret.
The scripts are POSIX sh so they run unchanged in the redis image and in tests.
"""

from __future__ import annotations

from pynomaly_operator.builders import pods
from pynomaly_operator.specs.redis import RedisSpec

DATA_DIR = "/data"

CONFIG_KEY = "redis.conf"
SENTINEL_CONFIG_KEY = "sentinel.conf"
START_SCRIPT_KEY = "redis-start.sh"
SENTINEL_START_SCRIPT_KEY = "sentinel-start.sh"
CLUSTER_START_SCRIPT_KEY = "cluster-start.sh"
CLUSTER_BOOTSTRAP_KEY = "cluster-bootstrap.sh"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _server(bind: str, port: int, data_dir: str) -> list[str]:
    """The lines redis.conf and sentinel.conf share: where to listen and write, no daemon."""
    return [
        f"bind {bind}",
        "protected-mode no",
        f"port {port}",
        f"dir {data_dir}",
        "daemonize no",
        'logfile ""',
    ]


def redis_conf(
    spec: RedisSpec,
    *,
    port: int = pods.REDIS_PORT,
    data_dir: str = DATA_DIR,
    bind: str = "0.0.0.0",  # noqa: S104 - pods listen on their own IP
) -> str:
    """redis.conf of a data node for ``spec.mode`` (cluster mode adds the cluster block)."""
    c = spec.config
    lines = [
        "# Rendered by pynomaly-operator from spec.redis; passwords are appended at start.",
        *_server(bind, port, data_dir),
        f"tcp-backlog {c.tcp_backlog}",
        f"tcp-keepalive {c.tcp_keepalive}",
        f"timeout {c.timeout}",
        f"maxmemory {c.maxmemory}",
        f"maxmemory-policy {c.maxmemory_policy}",
    ]
    if c.save:
        lines += [f"save {rule.seconds} {rule.changes}" for rule in c.save]
    else:
        lines.append('save ""')
    lines += [
        f"rdbcompression {_yes(c.rdbcompression)}",
        f"rdbchecksum {_yes(c.rdbchecksum)}",
        "dbfilename dump.rdb",
        f"appendonly {_yes(c.appendonly)}",
        f"hash-max-listpack-entries {c.hash_max_listpack_entries}",
        f"hash-max-listpack-value {c.hash_max_listpack_value}",
        f"list-max-listpack-size {c.list_max_listpack_size}",
        f"set-max-intset-entries {c.set_max_intset_entries}",
        f"zset-max-listpack-entries {c.zset_max_listpack_entries}",
        f"zset-max-listpack-value {c.zset_max_listpack_value}",
    ]
    if spec.mode == "sentinel":
        lines += [
            # A replica that lost its master keeps serving (stale) cache reads.
            "replica-serve-stale-data yes",
            "replica-read-only yes",
            f"repl-diskless-sync {_yes(not spec.persistence.enabled)}",
        ]
    if spec.mode == "cluster":
        lines += [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {spec.cluster.node_timeout_milliseconds}",
            # Clients get stable DNS names (pod IPs change on restart); the start script
            # sets cluster-announce-hostname.
            "cluster-preferred-endpoint-type hostname",
            # A cache keeps serving the slots it has while a shard is failing over.
            "cluster-require-full-coverage no",
            "cluster-allow-reads-when-down yes",
        ]
    return "\n".join(lines) + "\n"


def sentinel_conf(
    spec: RedisSpec,
    *,
    master_host: str,
    master_port: int = pods.REDIS_PORT,
    port: int = pods.SENTINEL_PORT,
    data_dir: str = "/tmp",  # noqa: S108 - sentinel's working dir inside its emptyDir
    bind: str = "0.0.0.0",  # noqa: S104 - pods listen on their own IP
) -> str:
    """sentinel.conf monitoring ``master_host`` (pod 0's stable DNS name in Kubernetes)."""
    s = spec.sentinel
    name = s.master_name
    lines = [
        "# Rendered by pynomaly-operator from spec.redis.sentinel; auth is appended at start.",
        *_server(bind, port, data_dir),
        # Kubernetes pod IPs change on restart; stable DNS names do not.
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        f"sentinel monitor {name} {master_host} {master_port} {s.quorum}",
        f"sentinel down-after-milliseconds {name} {s.down_after_milliseconds}",
        f"sentinel failover-timeout {name} {s.failover_timeout}",
        f"sentinel parallel-syncs {name} {s.parallel_syncs}",
    ]
    return "\n".join(lines) + "\n"


# Shell: ask_sentinels asks the sentinels in $SENTINELS ("host:port ...") who the master of
# $MASTER_NAME is now; sets master_host and master_port (both empty when none answers).
_ASK_SENTINELS = r"""ask_sentinels() {
  master_host=""
  master_port=""
  for s in ${SENTINELS:-}; do
    answer=$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "${s%:*}" -p "${s##*:}" \
      --raw sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null || true)
    host=$(printf '%s\n' "$answer" | sed -n 1p)
    port=$(printf '%s\n' "$answer" | sed -n 2p)
    case "$port" in
      ''|*[!0-9]*) continue ;;
    esac
    master_host=$host
    master_port=$port
    return 0
  done
  return 0
}
ask_sentinels
"""

# Shell: whether a sentinel in $SENTINELS sees the master of $MASTER_NAME subjectively or
# objectively down, or failing over, while it has replicas to promote.
_MASTER_FAILING_OVER = r"""master_failing_over() {
  for s in ${SENTINELS:-}; do
    fields=$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "${s%:*}" -p "${s##*:}" \
      --raw sentinel master "$MASTER_NAME" 2>/dev/null || true)
    [ -n "$fields" ] || continue
    flags=$(printf '%s\n' "$fields" | awk 'prev == "flags" { print; exit } { prev = $0 }')
    replicas=$(printf '%s\n' "$fields" | awk 'prev == "num-slaves" { print; exit } { prev = $0 }')
    case "$flags" in
      *s_down*|*o_down*|*failover_in_progress*) [ "${replicas:-0}" -gt 0 ] && return 0 ;;
    esac
  done
  return 1
}
"""

# Data node of the sentinel topology. Environment:
#   CONF_SRC, CONF_DST        rendered redis.conf and its writable copy (emptyDir)
#   REDIS_PASSWORD            from the generated Secret
#   REDIS_PORT                 the port in redis.conf
#   ANNOUNCE_HOST             this pod's stable DNS name (what replicas/sentinels see)
#   INITIAL_MASTER_HOST/PORT  pod 0's stable DNS name: master of a brand-new topology
#   SENTINELS                 "host:port host:port ...": asked for the current master first
#   MASTER_NAME               the monitored master name
#   SETTLE_SECONDS            (optional, 30) longest wait for a failover under way
REDIS_START_SCRIPT = (
    r"""#!/bin/sh
# Start a Redis data node. On every start, ask the sentinels who the master is now: after a
# failover pod 0 must come back as a replica, not as a second master. With no sentinel
# answer (first start), pod 0 is the master and every other pod replicates it.
set -eu
cat "$CONF_SRC" > "$CONF_DST"  # a fresh file: cp would keep the ConfigMap's read-only mode
{
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  echo "replica-announce-ip $ANNOUNCE_HOST"
} >> "$CONF_DST"

"""
    + _MASTER_FAILING_OVER
    + _ASK_SENTINELS
    + r"""
# Named as the master while the sentinels see it down (this is a restart) with replicas they
# can promote: a failover is under way. Starting now would make a second master until they
# demote it (its replicas would resync from it meanwhile), so wait for their verdict, at most
# SETTLE_SECONDS; without replicas there is nothing to wait for.
settle=${SETTLE_SECONDS:-30}
while [ "$settle" -gt 0 ] && [ "$master_host" = "$ANNOUNCE_HOST" ] \
    && [ "$master_port" = "$REDIS_PORT" ] && master_failing_over; do
  echo "the sentinels see this master down and may fail it over: waiting (${settle}s left)"
  sleep 1
  settle=$((settle - 1))
  ask_sentinels
done
if [ -z "$master_host" ]; then
  master_host=$INITIAL_MASTER_HOST
  master_port=$INITIAL_MASTER_PORT
fi
if [ "$master_host" = "$ANNOUNCE_HOST" ] && [ "$master_port" = "$REDIS_PORT" ]; then
  echo "starting as master ($ANNOUNCE_HOST:$REDIS_PORT)"
else
  echo "starting as replica of $master_host:$master_port"
  echo "replicaof $master_host $master_port" >> "$CONF_DST"
fi
exec redis-server "$CONF_DST"
"""
)

# Sentinel. Environment: CONF_SRC, CONF_DST, REDIS_PASSWORD, MASTER_NAME, ANNOUNCE_HOST,
# SENTINELS (the other sentinels, asked for the current master so a restarted sentinel
# does not monitor a demoted pod 0).
SENTINEL_START_SCRIPT = (
    r"""#!/bin/sh
# Start a sentinel from the rendered sentinel.conf (copied: sentinel rewrites its config).
set -eu
"""
    + _ASK_SENTINELS
    + r"""if [ -n "$master_host" ]; then
  awk -v h="$master_host" -v p="$master_port" \
    '$1 == "sentinel" && $2 == "monitor" { $4 = h; $5 = p } { print }' \
    "$CONF_SRC" > "$CONF_DST"
else
  cat "$CONF_SRC" > "$CONF_DST"  # a fresh file: cp would keep the ConfigMap's read-only mode
fi
{
  echo "requirepass $REDIS_PASSWORD"
  echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
  echo "sentinel sentinel-pass $REDIS_PASSWORD"
  echo "sentinel announce-ip $ANNOUNCE_HOST"
} >> "$CONF_DST"
exec redis-server "$CONF_DST" --sentinel
"""
)

# Cluster node. Environment: CONF_SRC, CONF_DST, REDIS_PASSWORD, ANNOUNCE_HOST, POD_IP
# (optional: rewrites this node's own address in nodes.conf after a restart with a new IP).
CLUSTER_START_SCRIPT = r"""#!/bin/sh
# Start a Redis cluster node from the rendered redis.conf plus secrets and identity.
set -eu
cat "$CONF_SRC" > "$CONF_DST"  # a fresh file: cp would keep the ConfigMap's read-only mode
{
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  echo "cluster-announce-hostname $ANNOUNCE_HOST"
} >> "$CONF_DST"
nodes_conf=${NODES_CONF:-/data/nodes.conf}
if [ -n "${POD_IP:-}" ] && [ -f "$nodes_conf" ]; then
  # Pod IPs change on restart; the other nodes learn the new one through gossip.
  sed -i -E "/myself/ s/[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:/${POD_IP}:/" "$nodes_conf"
fi
exec redis-server "$CONF_DST"
"""

# Idempotent bootstrap, run by a Job (and by the real-process test). Environment:
#   REDIS_PASSWORD, CLUSTER_NODES ("host:port ..."), CLUSTER_REPLICAS, WAIT_SECONDS
CLUSTER_BOOTSTRAP_SCRIPT = r"""#!/bin/sh
# Form the Redis cluster once. Does nothing when any node already knows other nodes, so
# re-running the Job (operator upgrade, Job re-created) never re-shards or resets data.
set -eu
export REDISCLI_AUTH="$REDIS_PASSWORD"
deadline=$(( $(date +%s) + ${WAIT_SECONDS:-300} ))
addresses=""
for n in $CLUSTER_NODES; do
  h=${n%:*}
  p=${n##*:}
  until [ "$(redis-cli -h "$h" -p "$p" ping 2>/dev/null)" = "PONG" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "node $n did not answer PING in time" >&2
      exit 1
    fi
    sleep 1
  done
  known=$(redis-cli -h "$h" -p "$p" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
  if [ "${known:-1}" -gt 1 ]; then
    state=$(redis-cli -h "$h" -p "$p" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p')
    echo "cluster already formed ($n knows $known nodes, state $state): nothing to do"
    exit 0
  fi
  # CLUSTER MEET takes IP addresses: resolve the stable DNS names now.
  ip=$(getent hosts "$h" | awk 'NR == 1 { print $1 }')
  addresses="$addresses ${ip:-$h}:$p"
done
echo "creating cluster:$addresses"
# shellcheck disable=SC2086
redis-cli --cluster create $addresses --cluster-replicas "$CLUSTER_REPLICAS" --cluster-yes
first=${addresses# }
first=${first%% *}
until redis-cli -h "${first%:*}" -p "${first##*:}" cluster info | tr -d '\r' \
    | grep -q '^cluster_state:ok'; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "cluster did not reach cluster_state:ok in time" >&2
    exit 1
  fi
  sleep 1
done
echo "cluster formed"
"""
