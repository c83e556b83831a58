#!/usr/bin/env bash
# make demo: drflow on one machine, with no Docker and no cloud account.
#
# Builds drflow and drflow-worker, starts the Temporal dev server (Web UI, history in a SQLite
# file that survives restarts, drflow's search attributes registered), generates the sample
# data, starts one worker serving every region of the sample configuration, applies the
# schedules, runs one backup and one restore drill, prints their RPO/RTO and the Web UI links,
# and keeps running until Ctrl-C (or SIGTERM), which stops everything it started. Running it
# again keeps the history and the restore points, so the next backup measures a real RPO.
#
# Everything lives in one directory (default var/demo; `make clean` removes it). Environment,
# all optional:
#   DRFLOW_DEMO_DIR           that directory
#   DRFLOW_DEMO_PORT          Temporal frontend port (default 7233)
#   DRFLOW_DEMO_UI_PORT       Temporal Web UI port (default 8233)
#   DRFLOW_DEMO_METRICS_PORT  the worker's Prometheus port (default 9464)
#   DRFLOW_DEMO_POSTGRES      auto (default): include the PostgreSQL dataset orders-db when
#                             127.0.0.1:5432 accepts user postgres; off: leave it out
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${DRFLOW_DEMO_PORT:-7233}
ui_port=${DRFLOW_DEMO_UI_PORT:-8233}
metrics_port=${DRFLOW_DEMO_METRICS_PORT:-9464}
codec_port=${DRFLOW_DEMO_CODEC_PORT:-8234}
postgres_mode=${DRFLOW_DEMO_POSTGRES:-auto}
address=127.0.0.1:$port
ui=http://localhost:$ui_port
# drflow prints links to the dev server's default Web UI address.
default_ui=http://localhost:8233

say() { printf '==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

for p in "$port" "$ui_port" "$metrics_port" "$codec_port"; do
  [[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "ports must be numbers from 1 to 65535; got '$p'"
done
case $postgres_mode in auto | off) ;; *) die "DRFLOW_DEMO_POSTGRES must be auto or off; got '$postgres_mode'" ;; esac

# Refuse busy ports before building anything, naming what to change.
port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_port() { # port what variable
  if port_busy "$1"; then
    die "port $1 on 127.0.0.1 ($2) is already in use — is another demo or Temporal dev server running? Stop it, or pick another port with $3=..."
  fi
}
check_port "$port" "Temporal frontend" DRFLOW_DEMO_PORT
check_port "$ui_port" "Temporal Web UI" DRFLOW_DEMO_UI_PORT
check_port "$metrics_port" "worker metrics" DRFLOW_DEMO_METRICS_PORT
check_port "$codec_port" "codec server" DRFLOW_DEMO_CODEC_PORT

demo=${DRFLOW_DEMO_DIR:-$root/var/demo}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
bin=$demo/bin logs=$demo/logs cfg=$demo/drflow.yaml
mkdir -p "$bin" "$logs"
# Paths under the repository are printed relative to it, as a user typing them would.
show() { case $1 in "$root"/*) printf '%s' "${1#"$root"/}" ;; *) printf '%s' "$1" ;; esac; }

# --- processes: started in the background, stopped in reverse order on exit ---------------
worker_pid= temporal_pid= codec_pid=
stop_pid() { # pid name
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 150); do # 30 s: the worker lets running activities finish first
    kill -0 "$1" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$1" 2>/dev/null; then
    echo "demo: $2 did not stop within 30s; killing it" >&2
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  if [[ -n $worker_pid$temporal_pid ]]; then say "stopping the worker and the Temporal dev server"; fi
  stop_pid "$worker_pid" drflow-worker
  stop_pid "$temporal_pid" "Temporal dev server"
  stop_pid "$codec_pid" "codec server"
  worker_pid= temporal_pid= codec_pid=
}
trap cleanup EXIT
trap 'cleanup; say "stopped; history is kept in $(show "$demo/temporal.db")"; exit 0' INT TERM

# Tails a process log after a failure, so the cause is on screen.
log_tail() { echo "--- last lines of $(show "$1"):" >&2; tail -n 20 "$1" >&2 || true; }

# --- binaries -------------------------------------------------------------------------------
say "installing the pinned Temporal CLI into .tools/ if missing"
temporal=$(bash "$root/scripts/tools.sh" temporal)
# Relink only when a Go file, go.mod or go.sum changed since the last build, or Go itself did:
# linking takes a while, and the second run should start fast. The stamp is taken before the
# build, so a file edited during it still counts as newer.
stamp="$(go version) GOFLAGS=${GOFLAGS:-}"
stale() {
  [[ -x $bin/drflow && -x $bin/drflow-worker && $(cat "$bin/.stamp" 2>/dev/null) == "$stamp" ]] || return 0
  [[ -n $(find "$root" \( -path "$root/.git" -o -path "$root/.tools" -o -path "$root/var" \) -prune -o \
    \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin/.stamp" -print -quit) ]]
}
if stale; then
  say "building drflow and drflow-worker into $(show "$bin")"
  rm -f "$bin/.stamp"
  echo "$stamp" >"$bin/.stamp.new"
  (cd "$root" && go build -o "$bin/drflow" ./starter && go build -o "$bin/drflow-worker" ./worker)
  mv "$bin/.stamp.new" "$bin/.stamp"
else
  say "drflow and drflow-worker in $(show "$bin") are up to date"
fi

# --- sample data ----------------------------------------------------------------------------
# Deterministic CSV and log files (the same bytes on every machine, so a second run's backup
# reuses every chunk). The generator is a Park–Miller LCG in plain awk: its products stay
# below 2^53, exact in every awk's doubles.
gen_customers() { # seed rows
  awk -v seed="$1" -v rows="$2" 'BEGIN {
    split("Ada Ben Chloe Dario Eva Finn Greta Hugo Ines Jonas Klara Luca Mia Noah Olga Pablo", first, " ")
    split("Andersen Berger Costa Dubois Eriksen Fischer Garcia Horvat Ivanova Jansen Keller Lind", last, " ")
    split("DE FR NL IE ES IT PL SE AT BE", country, " ")
    x = seed
    print "customer_id,first_name,last_name,email,country,balance_eur,created"
    for (i = 1; i <= rows; i++) {
      x = (x * 48271) % 2147483647; f = first[x % 16 + 1]
      x = (x * 48271) % 2147483647; l = last[x % 12 + 1]
      x = (x * 48271) % 2147483647
      printf "%d,%s,%s,%s.%s%d@example.com,%s,%d.%02d,2024-%02d-%02d\n", seed * 1000000 + i, f, l, tolower(f), tolower(l), i, country[x % 10 + 1], x % 100000, x % 100, x % 12 + 1, x % 28 + 1
    }
  }'
}
gen_log() { # seed lines day
  awk -v seed="$1" -v lines="$2" -v day="$3" 'BEGIN {
    split("GET POST PUT DELETE", method, " ")
    split("/api/orders /api/customers /api/invoices /healthz /api/search", path, " ")
    split("200 200 200 201 204 304 404 500", status, " ")
    x = seed
    for (i = 0; i < lines; i++) {
      x = (x * 48271) % 2147483647
      s = i * 86400 / lines
      printf "%sT%02d:%02d:%02dZ req=%08x %s %s %s %dms\n", day, s / 3600, s % 3600 / 60, s % 60, x, method[x % 4 + 1], path[x % 5 + 1], status[x % 8 + 1], x % 900 + 3
    }
  }'
}
data_version=1 # bump when the generators change, to regenerate
if [[ $(cat "$demo/data/.version" 2>/dev/null) != "$data_version" ]]; then
  say "generating the sample data in $(show "$demo/data")"
  rm -rf "$demo/data"
  mkdir -p "$demo/data/customers/accounts" "$demo/data/customers/notes" "$demo/data/us-logs"
  for i in 1 2 3 4; do gen_customers "$i" 12000 >"$demo/data/customers/accounts/part-000$i.csv"; done
  for i in 1 2 3; do
    printf 'Account review %d: nothing to report. This file is sample data generated by scripts/demo.sh.\n' "$i" \
      >"$demo/data/customers/notes/review-$i.txt"
  done
  for d in 01 02 03; do gen_log "$((100 + 10#$d))" 6000 "2025-01-$d" >"$demo/data/us-logs/app-2025-01-$d.log"; done
  echo "$data_version" >"$demo/data/.version"
fi

# --- PostgreSQL (optional) ------------------------------------------------------------------
pg() { PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p 5432 -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
postgres=no why_not=
if [[ $postgres_mode == off ]]; then
  why_not="DRFLOW_DEMO_POSTGRES=off"
elif ! command -v psql >/dev/null || ! command -v pg_dump >/dev/null || ! command -v pg_restore >/dev/null; then
  why_not="psql, pg_dump and pg_restore are not all installed"
elif ! pg -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  why_not="nothing on 127.0.0.1:5432 accepts user postgres without a password (see scripts/postgres.sh)"
else
  if [[ $(pg -d postgres -tAc "select 1 from pg_database where datname = 'drflow_demo'") != 1 ]]; then
    pg -d postgres -c 'create database drflow_demo' 2>/dev/null ||
      [[ $(pg -d postgres -tAc "select 1 from pg_database where datname = 'drflow_demo'") == 1 ]] ||
      die "could not create database drflow_demo on 127.0.0.1:5432"
  fi
  # Two small tables with generated (deterministic) rows, filled once.
  PGOPTIONS='-c client_min_messages=warning' pg -d drflow_demo >/dev/null <<'SQL'
create table if not exists customers (
  id bigint primary key, name text not null, country char(2) not null, created date not null);
create table if not exists orders (
  id bigint primary key, customer_id bigint not null references customers, total_cents bigint not null,
  placed date not null);
insert into customers
  select g, 'customer ' || g, (array['DE','FR','NL','IE','ES'])[g % 5 + 1], date '2024-01-01' + g % 365
  from generate_series(1, 2000) g where not exists (select 1 from customers);
insert into orders
  select g, g % 2000 + 1, (g * 7919) % 100000, date '2024-06-01' + g % 180
  from generate_series(1, 10000) g where not exists (select 1 from orders);
SQL
  postgres=yes
fi

# --- configuration --------------------------------------------------------------------------
# examples/drflow.yaml with its ./var/ paths moved into the demo directory, and orders-db only
# when PostgreSQL is there.
{
  echo "# Generated by scripts/demo.sh from examples/drflow.yaml on every run; edit that file instead."
  sed 's#\./var/#./#g' "$root/examples/drflow.yaml" |
    awk -v keep="$postgres" '
      /^[^ #]/ { skip = 0 }
      /^  - name: / { skip = ($3 == "orders-db" && keep != "yes") }
      !skip'
  printf '\n# Every payload drflow sends to Temporal is sealed with this keyring (made on the first run).\ncodec:\n  key_file: keys/payload.keyring\n'
} >"$cfg.tmp"
mv "$cfg.tmp" "$cfg"
if [[ $postgres == yes ]]; then
  say "PostgreSQL answers on 127.0.0.1:5432: dataset orders-db backs up database drflow_demo"
else
  say "leaving out the PostgreSQL dataset orders-db: $why_not"
fi

# --- payload codec --------------------------------------------------------------------------
# Inputs, results and progress reach Temporal sealed (AES-256-GCM); the codec server lets the
# Web UI show them decoded, for its own origin only.
keyring=$demo/keys/payload.keyring
if [[ ! -f $keyring ]]; then
  say "creating the payload keyring $(show "$keyring"): what drflow sends to Temporal is sealed with it"
  "$bin/drflow" codec-key create --file "$keyring" >/dev/null
fi
codec=http://127.0.0.1:$codec_port
say "starting the codec server on $codec (the Web UI decodes drflow's payloads through it)"
"$bin/drflow" codec-server --listen "127.0.0.1:$codec_port" --ui-origin "$ui,http://127.0.0.1:$ui_port" --config "$cfg" \
  >"$logs/codec.log" 2>&1 &
codec_pid=$!
for i in $(seq 1 60); do # 30 s
  kill -0 "$codec_pid" 2>/dev/null || { log_tail "$logs/codec.log"; die "the codec server exited"; }
  port_busy "$codec_port" && break
  ((i < 60)) || { log_tail "$logs/codec.log"; die "the codec server did not listen within 30s"; }
  sleep 0.5
done

# --- Temporal dev server --------------------------------------------------------------------
# drflow's search attributes (workflows.SearchAttributeDefinitions); the dev server registers
# them at every start and accepts the ones already in the SQLite file.
search_attrs=(DrDataset=Keyword DrTier=Int DrKind=Keyword DrRpoSeconds=Double DrRtoSeconds=Double DrObjectivesMet=Bool DrRunbook=Keyword)
sa_flags=()
for a in "${search_attrs[@]}"; do sa_flags+=(--search-attribute "$a"); done
say "starting the Temporal dev server on $address (Web UI $ui, history in $(show "$demo/temporal.db"))"
"$temporal" server start-dev --ip 127.0.0.1 --port "$port" --ui-port "$ui_port" --ui-codec-endpoint "$codec" \
  --db-filename "$demo/temporal.db" --namespace default --log-level warn "${sa_flags[@]}" \
  >"$logs/temporal.log" 2>&1 &
temporal_pid=$!
for i in $(seq 1 120); do # 60 s
  kill -0 "$temporal_pid" 2>/dev/null || { log_tail "$logs/temporal.log"; die "the Temporal dev server exited"; }
  "$temporal" operator cluster health --address "$address" >/dev/null 2>&1 && break
  ((i < 120)) || { log_tail "$logs/temporal.log"; die "the Temporal dev server did not become healthy within 60s"; }
  sleep 0.5
done

# --- worker ---------------------------------------------------------------------------------
worker_env=()
if [[ $postgres == yes ]]; then
  # Drills of orders-db restore into a scratch database that this role creates and drops.
  worker_env=(DRFLOW_POSTGRES_ADMIN_DSN="host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable")
fi
say "starting drflow-worker (single-machine mode: every region's queue and the control queue)"
env ${worker_env[@]+"${worker_env[@]}"} "$bin/drflow-worker" --config "$cfg" --temporal-address "$address" \
  --state-dir "$demo/state" --metrics-addr "127.0.0.1:$metrics_port" >"$logs/worker.log" 2>&1 &
worker_pid=$!
polled() { # task queue
  "$temporal" task-queue describe --task-queue "$1" --address "$address" -o json 2>/dev/null | grep -q '"identity"'
}
for i in $(seq 1 120); do # 60 s
  kill -0 "$worker_pid" 2>/dev/null || { log_tail "$logs/worker.log"; die "drflow-worker exited"; }
  polled drflow && polled drflow-eu-west-1 && break
  ((i < 120)) || { log_tail "$logs/worker.log"; die "drflow-worker did not poll its task queues within 60s"; }
  sleep 0.5
done

drflow=$bin/drflow
common=(--config "$cfg" --temporal-address "$address")
# drflow's links name the default Web UI address; point them at this one.
links() { sed "s#$default_ui#$ui#g"; }

# --- schedules ------------------------------------------------------------------------------
# Every dataset's tier schedules its backups, drills and retention; the demo's datasets are
# small, so the worker runs them as they come (customers backs up every 5 minutes).
say "applying the backup, drill and retention schedules of every dataset's tier"
"$drflow" schedules apply "${common[@]}" 2>&1 | links

# --- one backup and one drill ---------------------------------------------------------------
say "backing up dataset customers"
"$drflow" backup customers --wait "${common[@]}" 2>&1 | links
say "restore drill of dataset customers"
"$drflow" drill customers --wait "${common[@]}" 2>&1 | links | tee "$logs/drill.out"
drill_id=$(sed -n 's/^started workflow //p' "$logs/drill.out" | head -n 1)

# --- evidence for auditors -------------------------------------------------------------------
# Today's backups, copies, drills, holds and key events as an evidence pack: evidence.json,
# an index.html to read offline, and the signed audit records they rest on.
evidence_dir=$demo/evidence/$(date -u +%Y%m%dT%H%M%SZ)
say "writing an evidence pack of today's runs into $(show "$evidence_dir")"
"$drflow" evidence --config "$cfg" --state-dir "$demo/state" --from "$(date -u +%Y-%m-%d)" --to "$(date -u +%Y-%m-%d)" \
  --out "$evidence_dir" >"$logs/evidence.out" 2>&1 || { cat "$logs/evidence.out" >&2; die "drflow evidence failed"; }
sed -n '2,5p' "$logs/evidence.out"

cat <<EOF

drflow demo is running.
  Web UI:             $ui/namespaces/default/workflows
  this drill:         $ui/namespaces/default/workflows/$drill_id
  all drills:         $ui/namespaces/default/workflows?query=DrKind%3D%22drill%22
  missed objectives:  $ui/namespaces/default/workflows?query=DrObjectivesMet%3Dfalse
  Temporal frontend:  $address (export TEMPORAL_ADDRESS=$address for drflow and temporal)
  worker metrics:     http://127.0.0.1:$metrics_port/metrics
  codec server:       $codec (payloads in Temporal are sealed with $(show "$keyring"); the Web UI decodes them here)
  evidence pack:      $(show "$evidence_dir")/index.html
                      check it offline: $(show "$bin/drflow") audit key --region eu-west-1 --state-dir $(show "$demo/state") > eu-west-1.pem
                                        $(show "$bin/drflow") audit verify $(show "$evidence_dir") --key eu-west-1=eu-west-1.pem
  logs:               $(show "$logs")/
Try another drill:    $(show "$bin/drflow") drill customers --wait --config $(show "$cfg") --temporal-address $address
Run a runbook with an approval gate (a legal hold on every restore point of customers, released with a second person's approval):
  $(show "$bin/drflow") runbook run legal-hold --param dataset=customers --param hold=demo-$(date -u +%Y%m%d-%H%M%S) \\
      --param from=2000-01-01 --param to=2099-12-31 --param reason="demo matter" \\
      --as legal-counsel --config $(show "$cfg") --temporal-address $address
  $(show "$bin/drflow") runbook status RUN_ID --config $(show "$cfg") --temporal-address $address     (the RUN_ID it printed)
  $(show "$bin/drflow") runbook approve RUN_ID --gate approve-release --as compliance-officer --config $(show "$cfg") --temporal-address $address
  (or on the run's page in the Web UI: More Actions → Send an Update, name approve, data {"gate":"approve-release","approver":"compliance-officer"})
  all runbook runs:   $ui/namespaces/default/workflows?query=DrKind%3D%22runbook%22
Press Ctrl-C to stop everything (history is kept for the next run).
EOF

# Wait for Ctrl-C; a background sleep lets the trap run at once.
while kill -0 "$temporal_pid" 2>/dev/null && kill -0 "$worker_pid" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
if ! kill -0 "$temporal_pid" 2>/dev/null; then
  log_tail "$logs/temporal.log"
  die "the Temporal dev server exited unexpectedly"
fi
log_tail "$logs/worker.log"
die "drflow-worker exited unexpectedly"
