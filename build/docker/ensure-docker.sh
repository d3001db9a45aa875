#!/usr/bin/env bash
# ensure-docker.sh: make sure a Docker engine answers `docker info`, idempotently.
#
#   1. An engine already answers: nothing to do.
#   2. No dockerd on the machine: as root with apt-get (Debian/Ubuntu, CI here), install
#      Debian's docker.io. Elsewhere it stops and says what to install.
#   3. Start dockerd in the background (log: $MESHDEMO_DOCKERD_LOG), wait until `docker info`
#      works. If it dies on overlay2 (nested containers sometimes refuse overlay), retry once
#      with the vfs storage driver.
#   4. Compose: if neither `docker compose` nor `docker-compose` answers, install Debian's
#      docker-compose (best effort; only the compose checks need it).
#
# Exit status: 0 engine up; 1 no engine could be started (callers decide whether to skip).
# It never stops an engine and never touches one it did not start.
set -uo pipefail

LOG=${MESHDEMO_DOCKERD_LOG:-/tmp/meshdemo-dockerd.log}
APT_LOG=${MESHDEMO_APT_LOG:-/tmp/meshdemo-apt.log}
WAIT=${MESHDEMO_DOCKERD_WAIT:-60}

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_up() { timeout 15 docker info >/dev/null 2>&1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
	if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
		say "cannot install $* here (needs root and apt-get); install it yourself"
		return 1
	fi
	# An empty package list means `apt-get update` never ran on this machine.
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | head -n 1)" ] || ! apt-cache show "$1" >/dev/null 2>&1; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; return 1; }
	fi
	say "apt-get install $* (log: $APT_LOG)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1; then
		tail -n 20 "$APT_LOG" >&2
		return 1
	fi
}

start_dockerd() {
	# setsid: dockerd must outlive the make recipe that started it.
	setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null &
	local pid=$! i
	say "started dockerd $* (pid $pid, log $LOG); waiting up to ${WAIT}s"
	for ((i = 0; i < WAIT; i++)); do
		if engine_up; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			say "dockerd exited; last lines of $LOG:"
			tail -n 15 "$LOG" >&2
			return 1
		fi
		sleep 1
	done
	say "dockerd (pid $pid) did not answer within ${WAIT}s; stopping it"
	kill "$pid" 2>/dev/null
	return 1
}

ensure_compose() {
	if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
		return 0
	fi
	apt_install docker-compose || say "no compose tool: compose checks will be skipped"
}

main() {
	if engine_up; then
		ensure_compose
		return 0
	fi
	if ! command -v dockerd >/dev/null 2>&1; then
		apt_install docker.io || return 1
		hash -r
	fi
	if ! command -v docker >/dev/null 2>&1; then
		say "dockerd is installed but the docker client is missing"
		return 1
	fi
	if pgrep -x dockerd >/dev/null 2>&1; then
		# One is starting (or hung): give it the same time before starting a second one.
		say "a dockerd is already running but does not answer yet; waiting"
		local i
		for ((i = 0; i < WAIT; i++)); do
			engine_up && { ensure_compose; return 0; }
			sleep 1
		done
		say "the running dockerd never answered"
		return 1
	fi
	if ! start_dockerd && ! start_dockerd --storage-driver=vfs; then
		say "no Docker engine could be started"
		return 1
	fi
	ensure_compose
	say "engine up: $(docker version -f 'server {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}' 2>/dev/null)"
}

main "$@"
