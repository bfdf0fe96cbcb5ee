#!/usr/bin/env bash
# Installs what the action's end-to-end test (internal/actiontest) needs, and
# nothing it already finds: Debian's Docker engine and mmdebstrap (for a
# private dockerd and locally made base images; no registry is reachable
# here), and nektos/act, pinned, built from the Go module proxy into
# .tools/bin. Idempotent: a second run does no network work.
set -euo pipefail
cd "$(dirname "$0")/.."

ACT_VERSION=v0.2.89
DEBS=(docker.io mmdebstrap)

missing=()
for p in "${DEBS[@]}"; do
  # A machine with another Docker engine (docker-ce, moby) keeps it.
  [ "$p" = docker.io ] && command -v dockerd >/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "act-deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(cat .tools/bin/.act-version 2>/dev/null)" != "$ACT_VERSION" ] || [ ! -x .tools/bin/act ]; then
  echo "act-deps: building nektos/act $ACT_VERSION into .tools/bin" >&2
  mkdir -p .tools/bin
  GOBIN="$PWD/.tools/bin" go install "github.com/nektos/act@$ACT_VERSION"
  echo "$ACT_VERSION" > .tools/bin/.act-version
fi
