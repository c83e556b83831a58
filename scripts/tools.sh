#!/usr/bin/env bash
# Installs the servers and tools that drflow's tests and demo run, pinned, into a git-ignored
# cache (.tools/ by default, or $DRFLOW_TOOLS). Safe to run concurrently: one install at a time.
#
#   scripts/tools.sh minio|fake-gcs-server|azurite|temporal|golangci-lint|all
#                                     installs if missing, prints the path
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.35.0
TEMPORAL_CLI_VERSION=v1.5.1
GOLANGCI_LINT_VERSION=v2.15.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${DRFLOW_TOOLS:-$root/.tools}
mkdir -p "$tools/bin"

# One installer at a time: test packages start in parallel and may all ask at once.
exec 9>"$tools/.lock"
flock 9

go_tool() { # name module version
  local bin="$tools/bin/$1" stamp="$tools/bin/.$1.version"
  if [[ ! -x $bin || $(cat "$stamp" 2>/dev/null) != "$3" ]]; then
    echo "installing $1 $3 (first run only)..." >&2
    GOBIN="$tools/bin" go install "$2@$3" >&2
    echo "$3" >"$stamp"
  fi
  echo "$bin"
}

azurite() {
  local dir="$tools/azurite" stamp="$tools/azurite/.version"
  if [[ ! -x $dir/node_modules/.bin/azurite-blob || $(cat "$stamp" 2>/dev/null) != "$AZURITE_VERSION" ]]; then
    command -v npm >/dev/null || { echo "npm is required to install Azurite (apt-get install nodejs npm)" >&2; exit 1; }
    echo "installing azurite $AZURITE_VERSION (first run only)..." >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
    echo "$AZURITE_VERSION" >"$stamp"
  fi
  echo "$dir/node_modules/.bin/azurite-blob"
}

case "${1:-}" in
  minio) go_tool minio github.com/minio/minio "$MINIO_VERSION" ;;
  fake-gcs-server) go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" ;;
  azurite) azurite ;;
  temporal) go_tool temporal github.com/temporalio/cli/cmd/temporal "$TEMPORAL_CLI_VERSION" ;;
  golangci-lint) go_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" ;;
  all)
    go_tool minio github.com/minio/minio "$MINIO_VERSION" >/dev/null
    go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" >/dev/null
    azurite >/dev/null
    go_tool temporal github.com/temporalio/cli/cmd/temporal "$TEMPORAL_CLI_VERSION" >/dev/null
    go_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" >/dev/null
    ;;
  *) echo "usage: $0 minio|fake-gcs-server|azurite|temporal|golangci-lint|all" >&2; exit 2 ;;
esac
