#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests (trust auth for the
# postgres user on loopback). Starts the machine's cluster if it is stopped, and installs
# PostgreSQL from Debian's packages if the machine has none.
set -euo pipefail

host=127.0.0.1 port=5432
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }

if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian packages)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-client >&2
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  # Loopback trust for the tests, as on the project's machines.
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "/etc/postgresql/$ver/main/pg_hba.conf"
fi

if ! ready; then
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "starting PostgreSQL $ver..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
fi

ready || { echo "PostgreSQL is not answering on $host:$port" >&2; exit 1; }
psql -h "$host" -p "$port" -U postgres -tAc 'select 1' >/dev/null \
  || { echo "PostgreSQL on $host:$port does not accept user postgres without a password (trust auth expected)" >&2; exit 1; }
echo "PostgreSQL ready on $host:$port" >&2
