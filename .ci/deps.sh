#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine, and nothing it
# already finds. Idempotent: a second run does no network work.
set -euo pipefail
cd "$(dirname "$0")/.."

AZURITE_VERSION=3.37.0
DEBS=(python3-django python3-azure gunicorn python3-uvicorn python3-whitenoise python3-pip python3-setuptools python3-wheel zip)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .tools/node_modules/.bin/azurite-blob ] || ! grep -q "\"version\": \"$AZURITE_VERSION\"" .tools/node_modules/azurite/package.json 2>/dev/null; then
  echo "deps: installing azurite@$AZURITE_VERSION into .tools/" >&2
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --save-exact --prefix .tools "azurite@$AZURITE_VERSION" >/dev/null
fi
