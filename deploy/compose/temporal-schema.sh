#!/bin/sh
# One-shot (service temporal-schema): creates Temporal's two databases on PostgreSQL and brings
# their schemas up to date with the temporal-sql-tool of the admin-tools image. Safe to run on
# every `docker compose up`: existing databases are kept, setup-schema leaves a versioned
# schema alone and update-schema applies only what is missing.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}" # the tool reads SQL_PASSWORD
schemas=/etc/temporal/schema/postgresql/v12

i=0
until nc -z "$POSTGRES_SEEDS" 5432; do
  i=$((i + 1))
  [ "$i" -le 60 ] || { echo "PostgreSQL at $POSTGRES_SEEDS:5432 does not answer" >&2; exit 1; }
  sleep 2
done

sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p 5432 -u "$POSTGRES_USER" "$@"; }
for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*} dir=${pair#*:}
  # create fails when the database exists; setup-schema below fails if it really is missing.
  sql --db "$db" create 2>/dev/null || echo "database $db exists"
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema -d "$schemas/$dir/versioned"
done
echo "Temporal schemas are up to date"
