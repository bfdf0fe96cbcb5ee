#!/usr/bin/env bash
# Installs the peers `make bench` compares djdeploy with, only when missing:
# Debian's azure-cli, rclone and zip, and Microsoft's azcopy from its npm
# package (the Go module proxy refuses azcopy; see
# /work/shared/research/bench-peers.md). A second run does no network work.
set -euo pipefail
cd "$(dirname "$0")/.."

AZCOPY_NPM="@azure-tools/azcopy-linux@10.32.2"
# libsecret-1-0: azcopy's binary links it even when no keyring is used.
DEBS=(azure-cli rclone zip libsecret-1-0)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .tools/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64 ]; then
  echo "bench-deps: installing $AZCOPY_NPM into .tools/" >&2
  mkdir -p .tools
  # --ignore-scripts: the package's install script only re-checks the
  # platform; the binary ships in the tarball.
  npm install --silent --no-audit --no-fund --ignore-scripts --prefix .tools "$AZCOPY_NPM" >/dev/null
  chmod +x .tools/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64 2>/dev/null || true
fi
