#!/usr/bin/env bash
# Regenerates the lock files of the test environments that have an .in file
# (py.txt, py-django6.txt): every version pinned, every wheel and sdist
# hashed, for the Python App Service runs by default (3.12) on its platform.
# Run after editing an .in file and commit both; `make deps` installs only
# what the locks say.
set -euo pipefail
cd "$(dirname "$0")"
UV=${UV:-../../.tools/uv/bin/uv}
[ -x "$UV" ] || { echo "lock: $UV is missing: run 'make deps' first (it installs uv)" >&2; exit 1; }
for in in *.in; do
  out="${in%.in}.txt"
  {
    echo "# Lock for .tools/${in%.in} (from $in): every version pinned, every file hashed; installed by .ci/deps.sh."
    echo "# Regenerate with .ci/python/lock.sh after editing $in."
    "$UV" pip compile --quiet --generate-hashes --python-version 3.12 \
      --python-platform x86_64-manylinux_2_28 --no-header --annotation-style line "$in"
  } > "$out.tmp"
  mv "$out.tmp" "$out"
done
