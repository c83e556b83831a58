#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver (chromedriver), which the Web UI
# tests drive, if they are missing, and prints the path of the one asked for. Safe to run
# concurrently: one install at a time; silent when both are already there.
#
#   scripts/chromium.sh [chromium|chromedriver]   (default chromium)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${DRFLOW_TOOLS:-$root/.tools}
mkdir -p "$tools"

want=${1:-chromium}
case "$want" in
  chromium | chromedriver) ;;
  *) echo "usage: $0 [chromium|chromedriver]" >&2; exit 2 ;;
esac

present() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

if ! present; then
  # Test packages start in parallel and may all ask at once.
  exec 9>"$tools/.chromium.lock"
  flock 9
  if ! present; then
    command -v apt-get >/dev/null || { echo "apt-get is required to install chromium and chromium-driver" >&2; exit 1; }
    sudo=()
    if [[ $(id -u) != 0 ]]; then
      command -v sudo >/dev/null || { echo "run as root (or with sudo) to install chromium and chromium-driver" >&2; exit 1; }
      sudo=(sudo -n)
    fi
    echo "installing chromium and chromium-driver (first run only)..." >&2
    apt_install() {
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
    }
    # A fresh machine may have no package lists yet, or stale ones.
    if ! apt_install; then
      "${sudo[@]}" apt-get update -qq >&2
      apt_install
    fi
    present || { echo "chromium or chromedriver still missing after apt-get install" >&2; exit 1; }
  fi
fi

command -v "$want"
