#!/usr/bin/env bash
# Reproducible-build check: builds cmd/djdeploy the way `make build` does
# (CGO off, -trimpath, same ldflags) from this checkout and from a copy of it
# under another path, and requires the two binaries to be byte-identical and
# to contain neither source path. A path, a build time or a random value that
# leaks into the binary shows up here as a different SHA-256.
#
# Both builds pass -buildvcs=false and the same version string: the copy has
# no .git, and this checks the build itself, not the VCS stamp (which is a
# pure function of the commit in CI's clean checkout anyway).
#
# The Go build cache is shared: with -trimpath the compile steps are keyed
# without the source path, so the copy reuses them, and the link, which
# writes the binary, runs again for each output.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-repro-check}
LDFLAGS="-s -w -X github.com/djdeploy/djdeploy/internal/cli.Version=$VERSION"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/elsewhere/djdeploy-copy"
mkdir -p "$copy" "$tmp/a" "$tmp/b"
# The files of this checkout (tracked, and new ones not ignored): what a build sees.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$copy"

build() { # dir out
  (cd "$1" && CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$2" ./cmd/djdeploy)
}
build "$PWD" "$tmp/a/djdeploy"
build "$copy" "$tmp/b/djdeploy"

a=$(sha256sum "$tmp/a/djdeploy" | cut -d' ' -f1)
b=$(sha256sum "$tmp/b/djdeploy" | cut -d' ' -f1)
if [ "$a" != "$b" ]; then
  echo "repro: FAIL: the same source built in two places differs: $a vs $b" >&2
  exit 1
fi
for p in "$PWD" "$copy" "$tmp"; do
  if grep -qaF "$p" "$tmp/a/djdeploy"; then
    echo "repro: FAIL: the binary contains the build path $p (is -trimpath set?)" >&2
    exit 1
  fi
done
echo "repro: ok: cmd/djdeploy is byte-identical when built from two paths (sha256 $a)" >&2
