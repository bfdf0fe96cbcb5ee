#!/usr/bin/env bash
# make demo: until the release command lands, build the example app.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.demo/build
rm -rf "$out"
DJDEPLOY_PYTHON=${DJDEPLOY_PYTHON:-/usr/bin/python3} bin/djdeploy build --project examples/django-app --out "$out"
