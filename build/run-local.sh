#!/usr/bin/env bash
# Runs the four workloads as local processes on 127.0.0.1, wired to each other,
# until Ctrl-C (or SIGTERM), which every workload receives for a graceful stop.
#   client 8080 (admin 9090) → server1 8081 (9091) → server2 8082 (9092); user-service 8083 (9093)
#   gRPC (GRPC_PORT): client 50050, server1 50051, server2 50052
# Environment passes through, so `FAULT_DELAY=2s make run` applies to all four;
# per-workload overrides: SERVER2_ENV="FAULT_ERROR_RATE=30 SERVICE_VERSION=v2" make run.
set -euo pipefail
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
pids=()
stop() { trap - INT TERM EXIT; kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop INT TERM EXIT
start() { # name port admin extra-env...
  local name=$1 port=$2 admin=$3; shift 3
  env LISTEN_HOST=127.0.0.1 PORT="$port" ADMIN_PORT="$admin" DRAIN_DELAY="${DRAIN_DELAY:-0s}" \
    SERVER1_URL=http://127.0.0.1:8081 SERVER2_URL=http://127.0.0.1:8082 USER_SERVICE_URL=http://127.0.0.1:8083 \
    SERVER1_GRPC_ADDR=127.0.0.1:50051 SERVER2_GRPC_ADDR=127.0.0.1:50052 \
    "$@" "$bin/$name" &
  pids+=($!)
}
# shellcheck disable=SC2086
start server2 8082 9092 GRPC_PORT=50052 ${SERVER2_ENV:-}
# shellcheck disable=SC2086
start server1 8081 9091 GRPC_PORT=50051 ${SERVER1_ENV:-}
# shellcheck disable=SC2086
start user-service 8083 9093 ${USER_SERVICE_ENV:-}
# shellcheck disable=SC2086
start client 8080 9090 GRPC_PORT=50050 ${CLIENT_ENV:-}
for port in 8080 8081 8082 8083; do # the workloads probe themselves; no curl needed
  for _ in $(seq 100); do PORT=$port "$bin/client" healthcheck >/dev/null 2>&1 && break; sleep 0.05; done
done
echo "meshdemo is up:  curl -i http://127.0.0.1:8080/client/server1   (Ctrl-C stops it)" >&2
wait -n "${pids[@]}"
