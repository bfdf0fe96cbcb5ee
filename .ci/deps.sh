#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine, and nothing it
# already finds. Idempotent: a second run does no network work.
#
# Django and the rest of the Python side come from PyPI, never from Debian
# (whose Django is years behind): each .ci/python/NAME.txt, a lock with every
# version pinned and hashed, becomes the virtualenv .tools/NAME on Python
# 3.12, App Service's default: .tools/py (Django 5.2 LTS, the tests' and the
# demo's), .tools/py-django6 (the newest Django 6), .tools/conformance
# (azure-cli and the Azure SDK for Python), .tools/outside (Wagtail, DRF).
set -euo pipefail
cd "$(dirname "$0")/.."

AZURITE_VERSION=3.37.0
DEBS=(zip)

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

# Python tool environments: every .ci/python/NAME.txt (a lock with hashes) is
# installed into .tools/NAME with uv, on Python 3.12; a stamp of the lock's
# hash makes a second run free.
UV_VERSION=0.13.9
py312=""
for c in "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do
  [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && py312="$c"
done
for lock in .ci/python/*.txt; do
  [ -e "$lock" ] || continue
  name=$(basename "$lock" .txt)
  sum=$(sha256sum "$lock" | cut -d' ' -f1)
  [ "$(cat ".tools/$name/.lock-sha256" 2>/dev/null)" = "$sum" ] && continue
  if [ -z "$py312" ]; then
    echo "deps: Python 3.12 (App Service's default) is needed for .tools/$name and was not found as python3.12 on PATH or in ~/.pyenv/versions/3.12.*: install it (pyenv install 3.12, or your distribution's python3.12 with its venv module) and run 'make deps' again" >&2
    exit 1
  fi
  if [ ! -x .tools/uv/bin/uv ] || ! .tools/uv/bin/uv --version | grep -q " $UV_VERSION"; then
    echo "deps: installing uv $UV_VERSION into .tools/uv" >&2
    "$py312" -m venv .tools/uv
    .tools/uv/bin/pip install -q "uv==$UV_VERSION"
  fi
  echo "deps: installing .tools/$name from $lock" >&2
  [ -x ".tools/$name/bin/python" ] || "$py312" -m venv ".tools/$name"
  .tools/uv/bin/uv pip sync -q --python ".tools/$name/bin/python" --require-hashes "$lock"
  echo "$sum" > ".tools/$name/.lock-sha256"
done
