#!/usr/bin/env bash
# Usage: .ci/check-release-version.sh TAG OWNER
# Fails unless action.yml runs the image that releasing TAG pushes
# (ghcr.io/OWNER/djdeploy:VERSION for TAG vVERSION): a release whose
# action.yml named another version would run an image its release never
# built. Called by .github/workflows/release.yml before anything is pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:?usage: check-release-version.sh TAG OWNER}"
owner="${2:?usage: check-release-version.sh TAG OWNER}"
case "$tag" in
  v[0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "release tag $tag is not vMAJOR.MINOR.PATCH: push a tag like v1.2.3" >&2; exit 1 ;;
esac
want="docker://ghcr.io/${owner,,}/djdeploy:${tag#v}"
got="$(sed -n 's/^  image: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' action.yml)"
if [ "$got" != "$want" ]; then
  echo "action.yml runs image '$got' but tag $tag releases '$want':" >&2
  echo "set ReleaseVersion in internal/gen/version.go to ${tag#v}, run make generate, commit, and tag again" >&2
  exit 1
fi
echo "action.yml names $want"
