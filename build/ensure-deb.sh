#!/usr/bin/env bash
# ensure-deb.sh PKG...: make sure Debian packages are installed, idempotently.
#
# A package already installed (dpkg says "install ok installed") costs nothing. Missing ones are
# installed with apt-get on a machine with apt, as root (CI here) or through passwordless sudo
# (GitHub's runners); `apt-get update` runs first when the package lists are empty or do not know
# a package. Elsewhere it stops and says what to install.
#
# Exit status: 0 every package installed; 1 some could not be installed; 2 usage.
set -euo pipefail

APT_LOG=${MESHDEMO_APT_LOG:-/tmp/meshdemo-apt.log}

say() { printf 'ensure-deb: %s\n' "$*" >&2; }

[ $# -gt 0 ] || { echo "usage: ensure-deb.sh PKG..." >&2; exit 2; }

missing=()
for pkg in "$@"; do
	if [ "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

asroot=()
if [ "$(id -u)" != 0 ] && sudo -n true >/dev/null 2>&1; then
	asroot=(sudo -n)
fi
if { [ "$(id -u)" != 0 ] && [ ${#asroot[@]} = 0 ]; } || ! command -v apt-get >/dev/null 2>&1; then
	say "missing Debian package(s): ${missing[*]}; installing needs root (or passwordless sudo) and apt-get: run 'sudo apt-get install ${missing[*]}'"
	exit 1
fi
# An empty package list means `apt-get update` never ran on this machine.
lists=$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | head -n 1)
if [ -z "$lists" ] || ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
	say "apt-get update"
	"${asroot[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; exit 1; }
fi
say "apt-get install ${missing[*]} (log: $APT_LOG)"
if ! "${asroot[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1; then
	tail -n 20 "$APT_LOG" >&2
	exit 1
fi
