#!/bin/sh
# One-shot (service temporal-setup): waits for the Temporal server, creates the namespace and
# registers drflow's search attributes (workflows.SearchAttributeDefinitions; the compose test
# checks this list against it). Safe to run again: it only adds what is missing.
set -eu
addr=${TEMPORAL_ADDRESS:?}
ns=${TEMPORAL_NAMESPACE:-default}
attributes="DrDataset=Keyword DrTier=Int DrKind=Keyword DrRpoSeconds=Double DrRtoSeconds=Double DrObjectivesMet=Bool DrRunbook=Keyword"

# retry N COMMAND...: runs COMMAND until it succeeds, at most N times, 2 s apart.
retry() {
  n=$1 i=1
  shift
  until "$@"; do
    [ "$i" -lt "$n" ] || { echo "gave up: $*" >&2; return 1; }
    i=$((i + 1))
    sleep 2
  done
}

retry 90 temporal operator cluster health --address "$addr"
if ! temporal operator namespace describe --namespace "$ns" --address "$addr" >/dev/null 2>&1; then
  retry 10 temporal operator namespace create --namespace "$ns" --retention 720h --address "$addr"
fi
for a in $attributes; do
  name=${a%%=*} type=${a#*=}
  if temporal operator search-attribute list --namespace "$ns" --address "$addr" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    # A namespace created a moment ago may take a few seconds to reach every frontend.
    retry 15 temporal operator search-attribute create --namespace "$ns" --address "$addr" --name "$name" --type "$type"
  fi
done
temporal operator search-attribute list --namespace "$ns" --address "$addr"
