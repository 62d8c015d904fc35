#!/usr/bin/env bash
# A local chathub cluster on loopback: one redis-server, N gateway nodes in cluster
# mode, and haproxy balancing WebSockets in front of them.
#
#   deploy/local-cluster.sh up [--nodes N] [--base-port P]
#   deploy/local-cluster.sh down
#
# `up` prints one line per node, `node ws://HOST:PORT http://HOST:PORT`, and one line
# `balancer ws://HOST:PORT`. `down` stops exactly what `up` started (by PID).
# Ports: redis P, balancer P+1, node i WebSocket P+10+i, node i HTTP P+50+i (P=17000).
# Needs redis-server and haproxy (Debian: apt-get install redis-server haproxy).
# CHATHUB_BIN picks the chathub binary (default: a release build, made if missing);
# CHATHUB_STATE_DIR where PIDs, configs and logs go (default deploy/.local-cluster).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="${CHATHUB_STATE_DIR:-$here/.local-cluster}"
host=127.0.0.1

die() { echo "local-cluster: $*" >&2; exit 1; }

wait_for() { # url-ish description, command...
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up (logs in $state)"
}

port_free() { ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

up() {
  local nodes=3 base=17000
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes=$2; shift 2 ;;
      --base-port) base=$2; shift 2 ;;
      *) die "unknown option $1 (use --nodes N, --base-port P)" ;;
    esac
  done
  [ -e "$state/pids" ] && die "already up ($state/pids exists); run '$0 down' first"
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  command -v haproxy >/dev/null || die "haproxy not found (apt-get install haproxy)"
  local bin="${CHATHUB_BIN:-$root/target/release/chathub}"
  if [ ! -x "$bin" ]; then
    echo "building chathub (release)..." >&2
    (cd "$root" && cargo build --release -q -p chathub) || die "build failed"
  fi
  local redis_port=$base balancer_port=$((base + 1))
  for p in "$redis_port" "$balancer_port"; do port_free "$p" || die "port $p is taken (try --base-port)"; done
  mkdir -p "$state"
  : > "$state/pids"
  # Whatever fails from here on, stop what was started.
  trap 'down >/dev/null' EXIT

  redis-server --port "$redis_port" --bind "$host" --dir "$state" --save "" \
    --appendonly yes --daemonize no --loglevel warning > "$state/redis.log" 2>&1 &
  echo "$!" >> "$state/pids"
  wait_for "redis-server" redis-cli -h "$host" -p "$redis_port" ping

  local servers=""
  for i in $(seq 0 $((nodes - 1))); do
    local ws=$((base + 10 + i)) http=$((base + 50 + i))
    port_free "$ws" && port_free "$http" || die "port $ws or $http is taken (try --base-port)"
    # Attachments: one directory every node shares (on several machines: S3).
    "$bin" serve --listen "$host:$ws" --http "$host:$http" --redis "redis://$host:$redis_port" \
      --attachments "$state/attachments" > "$state/node$i.log" 2>&1 &
    echo "$!" >> "$state/pids"
    wait_for "node $i" bash -c "exec 3<>/dev/tcp/$host/$http"
    servers+="    server node$i $host:$ws check port $http"$'\n'
    echo "node ws://$host:$ws http://$host:$http"
  done

  local cfg="$state/haproxy.cfg"
  sed -e "s|@STATE@|$state|" -e "s|@BIND@|$host:$balancer_port|" "$here/haproxy.cfg.template" \
    | awk -v servers="$servers" '{ if ($0 == "@SERVERS@") printf "%s", servers; else print }' > "$cfg"
  haproxy -f "$cfg" -db > "$state/haproxy.log" 2>&1 &
  echo "$!" >> "$state/pids"
  wait_for "haproxy" bash -c "exec 3<>/dev/tcp/$host/$balancer_port"
  echo "balancer ws://$host:$balancer_port"
  trap - EXIT
}

down() {
  [ -e "$state/pids" ] || { echo "local-cluster: nothing to stop" >&2; return 0; }
  # Reverse order: balancer first, then nodes (they close sockets with 1001), then redis.
  tac "$state/pids" | while read -r pid; do
    kill "$pid" 2>/dev/null || true
  done
  tac "$state/pids" | while read -r pid; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$state/pids"
  echo "stopped"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up [--nodes N] [--base-port P] | $0 down" >&2; exit 2 ;;
esac
