#!/usr/bin/env bash
# ensure-roundtrip.sh: make sure this machine can run the release round trip (e2e/release):
#
#   - a Docker engine (build/docker/ensure-docker.sh);
#   - Debian's docker-registry (the CNCF distribution server), started by the test itself;
#   - qemu-user-static with its binfmt entry for aarch64, so that the engine runs arm64 images:
#     binfmt_misc is mounted if it is not, and the entry Debian ships in
#     /usr/lib/binfmt.d/qemu-aarch64.conf is registered if the package's own hook did not (no
#     systemd in a container). Its F flag makes the kernel keep the interpreter open, so it works
#     inside containers whose file system has no qemu.
#
# Idempotent; installs only as root with apt-get. Exit status 0 when all are there, 1 otherwise
# (the test then skips, or fails under CI=true, naming what is missing).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
APT_LOG=${MESHDEMO_APT_LOG:-/tmp/meshdemo-apt.log}
say() { printf 'ensure-roundtrip: %s\n' "$*" >&2; }
status=0

"$root/build/docker/ensure-docker.sh" || status=1

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "apt-get install ${missing[*]} (log: $APT_LOG)"
		{ DEBIAN_FRONTEND=noninteractive apt-get update &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >>"$APT_LOG" 2>&1 ||
			{ tail -n 20 "$APT_LOG" >&2; status=1; }
	else
		say "missing ${missing[*]}: install them (Debian packages) as root"
		status=1
	fi
fi

binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
	mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || say "cannot mount binfmt_misc on $binfmt"
fi
if [ -e "$binfmt/register" ] && [ ! -e "$binfmt/qemu-aarch64" ]; then
	conf=/usr/lib/binfmt.d/qemu-aarch64.conf
	if [ -r "$conf" ]; then
		grep -v '^#' "$conf" >"$binfmt/register" 2>/dev/null || say "cannot register $conf"
	fi
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
	say "no binfmt entry for aarch64: arm64 images cannot run here"
	status=1
fi
exit $status
