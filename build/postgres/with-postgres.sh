#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS...]: start a throw-away PostgreSQL cluster on 127.0.0.1
# (a free port, trust auth for loopback only, fsync off), run CMD with
# MESHDEMO_TEST_DATABASE_URL pointing at it, then stop the cluster and delete it,
# whatever CMD did. Debian's PostgreSQL is installed when its binaries are missing
# (needs root). PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` user.
set -euo pipefail

want=15
bindir=""
# The pinned version first, then the newest installed (an unmatched glob stays literal and fails -x).
for d in "/usr/lib/postgresql/$want/bin" $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -Vr); do
	if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then bindir=$d; break; fi
done
if [[ -z "$bindir" ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "with-postgres: PostgreSQL is not installed and installing it needs root: apt-get install postgresql-$want" >&2
		exit 1
	fi
	echo "with-postgres: installing postgresql-$want from Debian" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "postgresql-$want" >/dev/null
	bindir="/usr/lib/postgresql/$want/bin"
fi

as_owner=()
if [[ $(id -u) -eq 0 ]]; then
	as_owner=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/meshdemo-pg.XXXXXX)
chmod 755 "$dir"
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres: "$dir"
data=$dir/data
started=""
cleanup() {
	if [[ -n "$started" ]]; then
		"${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as_owner[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres: "$data/pg_hba.conf"

port=""
for _ in 1 2 3 4 5 6 7 8; do
	p=$((20000 + RANDOM % 40000))
	if "${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 start \
		-o "-p $p -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >/dev/null 2>&1; then
		port=$p
		started=1
		break
	fi
done
if [[ -z "$port" ]]; then
	echo "with-postgres: PostgreSQL did not start:" >&2
	tail -20 "$dir/server.log" >&2
	exit 1
fi
export MESHDEMO_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "with-postgres: PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') on 127.0.0.1:$port (data in $data)" >&2
"$@"
