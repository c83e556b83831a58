#!/usr/bin/env bash
# make bench-compare: drflow against restic and kopia on the same real directory tree, on
# this machine, in one run.
#
#   DIR=path   the tree to back up (default: a copy of the Go module cache, capped at CAP_MB)
#   CAP_MB     size of that default copy (default 1024)
#   RUNS       how often each restore is timed; the median is printed (default 3)
#
# drflow backs up through Temporal (a dev server and drflow-worker started here, `drflow
# backup --wait`) and restores with `drflow restore --to`, which verifies every chunk and
# every file's hash as it writes. restic is the Debian package (installed if missing and
# possible); kopia is used if a kopia binary is on PATH or in .tools/bin (build one with
# `GOBIN=$PWD/.tools/bin go install github.com/kopia/kopia@v0.23.1`). Each timed step starts
# after a sync and with an empty page cache where that is allowed (root), and every tool
# writes to the same disk. Peak memory is the process's maximum
# resident set (drflow: the worker for backups, the command for restores).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# "_": the go tool ignores the directory (the default tree is full of go.mod files).
work=${DRFLOW_BENCH_DIR:-$root/var/_bench-compare}
cap_mb=${CAP_MB:-1024}
runs=${RUNS:-3}
port=${DRFLOW_BENCH_PORT:-7243}
address=127.0.0.1:$port

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-compare: %s\n' "$*" >&2; exit 1; }
[[ $cap_mb =~ ^[0-9]+$ ]] || die "CAP_MB must be a number of MiB; got '$cap_mb'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number; got '$runs'"
command -v /usr/bin/time >/dev/null || die "needs GNU time (/usr/bin/time) for peak memory"

mkdir -p "$work"
work=$(cd "$work" && pwd)

# --- the tree -------------------------------------------------------------------------------
tree=${DIR:-}
if [[ -z $tree ]]; then
  tree=$work/tree
  if [[ ! -f $work/tree.complete || $(cat "$work/tree.complete") != "$cap_mb" ]]; then
    src=$(go env GOMODCACHE)
    [[ -d $src ]] || die "no Go module cache at $src; give DIR=path"
    say "copying up to $cap_mb MiB of $src into $tree"
    rm -rf "$tree" "$work/tree.complete"
    mkdir -p "$tree"
    (cd "$src" && find . -path ./cache -prune -o -type f -printf '%s %P\n' | sort -k2 |
      awk -v cap=$((cap_mb << 20)) '{ sum += $1; if (sum <= cap) print substr($0, index($0, " ") + 1) }' |
      tar -cf - -T -) | (cd "$tree" && tar -xf -)
    chmod -R u+w "$tree"
    echo "$cap_mb" >"$work/tree.complete"
  fi
fi
[[ -d $tree ]] || die "DIR=$tree is not a directory"
tree=$(cd "$tree" && pwd)
files=$(find "$tree" -type f | wc -l)
tree_bytes=$(du -sb "$tree" | cut -f1)
say "tree: $tree, $files files, $((tree_bytes >> 20)) MiB"

# drop_caches empties the page cache where this user may (root): every step then starts cold,
# reading the repository and the tree from disk as a real restore or first backup does. On this
# kind of VM a page cache grown by earlier steps also makes later ones pay in kernel time
# (a restore took 6, 11, then 17 s run after run), which would make the order of the tools
# decide the figures.
drop_caches() {
  if [[ -w /proc/sys/vm/drop_caches ]]; then
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  fi
}

# timed CMD...: runs CMD after a sync, its output to $work/last.log; prints "SECONDS MAXRSS_KIB"
# (and says it on stderr).
timed() {
  sync
  drop_caches
  /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >"$work/last.log" 2>&1 || {
    tail -n 20 "$work/last.log" >&2
    die "failed: $*"
  }
  printf '    %ss, %s KiB peak\n' $(cat "$work/time.out") >&2
  cat "$work/time.out"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
declare -A result

# --- drflow ---------------------------------------------------------------------------------
say "building drflow and drflow-worker"
bin=$work/bin
mkdir -p "$bin"
(cd "$root" && go build -o "$bin/drflow" ./starter && go build -o "$bin/drflow-worker" ./worker)
temporal=$(bash "$root/scripts/tools.sh" temporal)
d=$work/drflow
rm -rf "$d"
mkdir -p "$d/keys"
cat >"$d/drflow.yaml" <<EOF
# Written by scripts/bench-compare.sh.
jurisdictions:
  - {name: EU, regions: [eu-west-1]}
keys:
  - {name: eu-kek, jurisdiction: EU, provider: local, path: keys/eu.keyring}
locations:
  - {name: primary, provider: local, path: store, region: eu-west-1}
policies:
  - {name: eu-only, home: EU}
tiers:
  - {name: bench, level: 1, rpo: 1h, rto: 1h, backup_every: 30m}
datasets:
  - {name: tree, classification: internal, policy: eu-only, tier: bench, primary: primary,
     source: {type: directory, path: $tree}}
EOF
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
"$temporal" server start-dev --ip 127.0.0.1 --port "$port" --headless --log-level warn \
  --search-attribute DrDataset=Keyword --search-attribute DrTier=Int --search-attribute DrKind=Keyword \
  --search-attribute DrRpoSeconds=Double --search-attribute DrRtoSeconds=Double \
  --search-attribute DrObjectivesMet=Bool --search-attribute DrRunbook=Keyword >"$work/temporal.log" 2>&1 &
pids+=($!)
for i in $(seq 1 120); do
  "$temporal" operator cluster health --address "$address" >/dev/null 2>&1 && break
  ((i < 120)) || die "the Temporal dev server did not start (see $work/temporal.log)"
  sleep 0.5
done
"$bin/drflow-worker" --config "$d/drflow.yaml" --temporal-address "$address" --state-dir "$d/state" \
  --metrics-addr 127.0.0.1:0 >"$work/worker.log" 2>&1 &
worker=$!
pids+=("$worker")
for i in $(seq 1 120); do
  "$temporal" task-queue describe --task-queue drflow-eu-west-1 --address "$address" -o json 2>/dev/null | grep -q '"identity"' && break
  kill -0 "$worker" 2>/dev/null || die "drflow-worker exited (see $work/worker.log)"
  ((i < 120)) || die "drflow-worker did not start (see $work/worker.log)"
  sleep 0.5
done
dr=("$bin/drflow")
common=(--config "$d/drflow.yaml" --temporal-address "$address")
say "drflow: full backup through Temporal"
read -r t _ < <(timed "${dr[@]}" backup tree --wait "${common[@]}")
result[drflow,full]=$t
say "drflow: no-change backup through Temporal"
read -r t _ < <(timed "${dr[@]}" backup tree --wait "${common[@]}")
result[drflow,nochange]=$t
result[drflow,mem]=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$worker/status")
result[drflow,size]=$(mib "$(du -sb "$d/store" | cut -f1)")
times=() mems=()
for i in $(seq 1 "$runs"); do
  say "drflow: restore $i of $runs"
  rm -rf "$work/restore-drflow"
  read -r t m < <(timed "${dr[@]}" restore tree --point latest --to "$work/restore-drflow" --config "$d/drflow.yaml" --state-dir "$d/state")
  times+=("$t") mems+=("$m")
done
result[drflow,restore]=$(printf '%s\n' "${times[@]}" | median)
result[drflow,restore_mem]=$(($(printf '%s\n' "${mems[@]}" | sort -n | tail -n 1) / 1024))
diff -r "$tree" "$work/restore-drflow" >/dev/null || die "drflow's restore differs from the tree"
rm -rf "$work/restore-drflow"
cleanup
pids=()

# --- restic ---------------------------------------------------------------------------------
if ! command -v restic >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  say "installing restic (Debian package)"
  apt-get install -y restic >/dev/null 2>&1 || true
fi
tools=(drflow)
if command -v restic >/dev/null; then
  tools+=(restic)
  export RESTIC_PASSWORD=bench-compare RESTIC_CACHE_DIR=$work/restic-cache
  repo=$work/restic-repo
  rm -rf "$repo" "$RESTIC_CACHE_DIR"
  restic init --repo "$repo" >/dev/null
  say "restic $(restic version | awk '{ print $2 }'): full backup"
  read -r t m < <(timed restic --repo "$repo" backup "$tree")
  result[restic,full]=$t result[restic,mem]=$((m / 1024))
  say "restic: no-change backup"
  read -r t m < <(timed restic --repo "$repo" backup "$tree")
  result[restic,nochange]=$t
  result[restic,size]=$(mib "$(du -sb "$repo" | cut -f1)")
  times=() mems=()
  for i in $(seq 1 "$runs"); do
    say "restic: restore $i of $runs"
    rm -rf "$work/restore-restic"
    read -r t m < <(timed restic --repo "$repo" restore latest --target "$work/restore-restic")
    times+=("$t") mems+=("$m")
  done
  result[restic,restore]=$(printf '%s\n' "${times[@]}" | median)
  result[restic,restore_mem]=$(($(printf '%s\n' "${mems[@]}" | sort -n | tail -n 1) / 1024))
  rm -rf "$work/restore-restic"
else
  say "restic not found: left out"
fi

# --- kopia ----------------------------------------------------------------------------------
kopia=$(command -v kopia || true)
[[ -n $kopia || ! -x $root/.tools/bin/kopia ]] || kopia=$root/.tools/bin/kopia
if [[ -n $kopia ]]; then
  tools+=(kopia)
  kr=$work/kopia-repo
  kc=(--config-file "$work/kopia.config" --password bench-compare)
  export KOPIA_CHECK_FOR_UPDATES=false
  rm -rf "$kr" "$work/kopia.config" "$work/kopia-cache"
  "$kopia" repository create filesystem --path "$kr" --cache-directory "$work/kopia-cache" "${kc[@]}" >/dev/null 2>&1
  say "kopia $("$kopia" --version 2>/dev/null | awk '{ print $1 }'): full backup"
  read -r t m < <(timed "$kopia" snapshot create "$tree" "${kc[@]}")
  result[kopia,full]=$t result[kopia,mem]=$((m / 1024))
  say "kopia: no-change backup"
  read -r t m < <(timed "$kopia" snapshot create "$tree" "${kc[@]}")
  result[kopia,nochange]=$t
  result[kopia,size]=$(mib "$(du -sb "$kr" | cut -f1)")
  snap=$("$kopia" snapshot list "$tree" "${kc[@]}" --json | grep -m1 -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/')
  times=() mems=()
  for i in $(seq 1 "$runs"); do
    say "kopia: restore $i of $runs"
    rm -rf "$work/restore-kopia"
    read -r t m < <(timed "$kopia" snapshot restore "$snap" "$work/restore-kopia" "${kc[@]}")
    times+=("$t") mems+=("$m")
  done
  result[kopia,restore]=$(printf '%s\n' "${times[@]}" | median)
  result[kopia,restore_mem]=$(($(printf '%s\n' "${mems[@]}" | sort -n | tail -n 1) / 1024))
  rm -rf "$work/restore-kopia"
else
  say "kopia not found: left out"
fi

# --- figures --------------------------------------------------------------------------------
printf '\nbench-compare: %s files, %s MiB (%s), restores: median of %s\n' "$files" "$((tree_bytes >> 20))" "$tree" "$runs"
for tool in "${tools[@]}"; do
  printf '%-7s full backup %8ss   no-change backup %7ss   restore %7ss   repository %6s MiB   peak memory: backup %5s MiB, restore %5s MiB\n' \
    "$tool" "${result[$tool,full]}" "${result[$tool,nochange]}" "${result[$tool,restore]}" "${result[$tool,size]}" \
    "${result[$tool,mem]}" "${result[$tool,restore_mem]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }'; }
for other in "${tools[@]:1}"; do
  printf 'drflow vs %-6s  full backup %sx faster   no-change backup %sx faster   restore %sx faster\n' "$other" \
    "$(ratio "${result[drflow,full]}" "${result[$other,full]}")" \
    "$(ratio "${result[drflow,nochange]}" "${result[$other,nochange]}")" \
    "$(ratio "${result[drflow,restore]}" "${result[$other,restore]}")"
done
