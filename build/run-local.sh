#!/usr/bin/env bash
# Runs the four workloads as local processes on 127.0.0.1, wired to each other,
# until Ctrl-C (or SIGTERM). The stop goes in dependency order, front door first:
# client gets SIGTERM, drains (DRAIN_DELAY), answers what it accepted and exits; only
# then server1, and after it server2 and user-service. A stop under load thus fails
# no request that the client accepted.
#   client 8080 (admin 9090) → server1 8081 (9091) → server2 8082 (9092); user-service 8083 (9093)
#   gRPC (GRPC_PORT): client 50050, server1 50051, server2 50052
# Environment passes through, so `FAULT_DELAY=2s make run` applies to all four;
# per-workload overrides: SERVER2_ENV="FAULT_ERROR_RATE=30 SERVICE_VERSION=v2" make run.
# PORT_BASE / ADMIN_PORT_BASE / GRPC_PORT_BASE move the blocks (the tests use free ports).
set -euo pipefail
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
p=${PORT_BASE:-8080} a=${ADMIN_PORT_BASE:-9090} g=${GRPC_PORT_BASE:-50050}
# Job control puts each workload in its own process group, so a terminal's Ctrl-C
# (SIGINT to the foreground group) reaches this script only, not all four at once.
set -m
pids=()
# Set by start (printf -v); empty for a workload not started yet when stop runs.
pid_client='' pid_server1='' pid_server2='' pid_user_service=''
stop() {
  trap - INT TERM EXIT
  local group
  for group in "$pid_client" "$pid_server1" "$pid_server2 $pid_user_service"; do
    # An empty group would make `wait` wait for every child, the ones not yet stopped too.
    [ -n "${group// /}" ] || continue
    # shellcheck disable=SC2086 # a group is one or two pids
    kill -TERM $group 2>/dev/null || true
    # shellcheck disable=SC2086
    wait $group 2>/dev/null || true
  done
}
trap stop INT TERM EXIT
start() { # name port admin extra-env...
  local name=$1 port=$2 admin=$3; shift 3
  env LISTEN_HOST=127.0.0.1 PORT="$port" ADMIN_PORT="$admin" DRAIN_DELAY="${DRAIN_DELAY:-0s}" \
    SERVER1_URL=http://127.0.0.1:$((p + 1)) SERVER2_URL=http://127.0.0.1:$((p + 2)) USER_SERVICE_URL=http://127.0.0.1:$((p + 3)) \
    SERVER1_GRPC_ADDR=127.0.0.1:$((g + 1)) SERVER2_GRPC_ADDR=127.0.0.1:$((g + 2)) \
    "$@" "$bin/$name" &
  pids+=($!)
  printf -v "pid_${name//-/_}" %s $!
}
# shellcheck disable=SC2086
start server2 $((p + 2)) $((a + 2)) GRPC_PORT=$((g + 2)) ${SERVER2_ENV:-}
# shellcheck disable=SC2086
start server1 $((p + 1)) $((a + 1)) GRPC_PORT=$((g + 1)) ${SERVER1_ENV:-}
# shellcheck disable=SC2086
start user-service $((p + 3)) $((a + 3)) ${USER_SERVICE_ENV:-}
# shellcheck disable=SC2086
start client "$p" "$a" GRPC_PORT="$g" ${CLIENT_ENV:-}
for port in "$p" $((p + 1)) $((p + 2)) $((p + 3)); do # the workloads probe themselves; no curl needed
  for _ in $(seq 100); do PORT=$port "$bin/client" healthcheck >/dev/null 2>&1 && break; sleep 0.05; done
done
echo "meshdemo is up:  curl -i http://127.0.0.1:$p/client/server1   (Ctrl-C stops it)" >&2
wait -n "${pids[@]}"
