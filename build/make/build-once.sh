#!/usr/bin/env bash
# build-once.sh TARGET [PREREQ...] -- COMMAND [ARG...]
#
# Runs COMMAND (which builds TARGET) holding an exclusive lock on TARGET.lock, unless TARGET,
# once the lock is held, exists and is newer than every PREREQ. `make prebuild` builds the CLIs
# of the offline checks in the background while the first test targets run; when a later target
# needs a CLI that is still being built, its rule waits here for that build instead of compiling
# the same packages a second time, and then finds the binary fresh.
set -euo pipefail

target=$1
shift
prereqs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	prereqs+=("$1")
	shift
done
[ "${1:-}" = -- ] || { echo "usage: build-once.sh TARGET [PREREQ...] -- COMMAND..." >&2; exit 2; }
shift

mkdir -p "$(dirname "$target")"
exec 9>"$target.lock"
flock 9
fresh=false
if [ -x "$target" ]; then
	fresh=true
	for p in "${prereqs[@]}"; do
		[ "$target" -nt "$p" ] || fresh=false
	done
fi
if $fresh; then
	echo "build-once: $target is up to date (built meanwhile)"
	exit 0
fi
"$@"
