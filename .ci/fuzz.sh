#!/usr/bin/env bash
# Usage: .ci/fuzz.sh [DURATION]   (default 60s; `make test` runs 5s, `make fuzz` 60s)
#
# Runs every Go fuzz target in the repo (func FuzzX in internal/*/fuzz_test.go)
# for DURATION each, one at a time: `go test -fuzz` takes one target per run.
# Any failure stops the script with go test's report; the failing input is in
# the package's testdata/fuzz/FuzzX/. Fix the bug, then commit that file: it
# becomes a regression seed that plain `go test` runs from then on.
#
# New interesting inputs go to Go's fuzz cache ($(go env GOCACHE)/fuzz), so
# each run starts where the last one stopped. Minimizing an interesting input
# pauses fuzzing for up to -fuzzminimizetime (Go's default is 60s, most of a
# short run), hence the lower default here; FUZZ_MINIMIZE overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-60s}
MINIMIZE=${FUZZ_MINIMIZE:-5s}
GO=${GO:-go}

mapfile -t targets < <(grep -H -o '^func Fuzz[A-Za-z0-9_]*' internal/*/fuzz_test.go | sed 's#^\(.*\)/fuzz_test.go:func #./\1 #' | sort)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
for t in "${targets[@]}"; do
  pkg=${t% *}
  fn=${t#* }
  if ! "$GO" test -run '^$' -fuzz "^${fn}\$" -fuzztime "$DURATION" -fuzzminimizetime "$MINIMIZE" "$pkg" >"$log" 2>&1; then
    # Go's fuzzer reports "context deadline exceeded" when -fuzztime ends
    # while it minimizes a new *interesting* (not failing) input. That is the
    # engine's clock, not a bug found: no failing input is written. A real
    # failure always says "Failing input written to".
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
      printf 'fuzz: ok   %-26s %-26s (time ran out while minimizing a new input)\n' "$fn" "$pkg" >&2
      continue
    fi
    cat "$log" >&2
    echo "fuzz: FAIL $fn in $pkg (the failing input is under $pkg/testdata/fuzz/$fn/)" >&2
    exit 1
  fi
  # The last progress line has the number of inputs tried.
  execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf 'fuzz: ok   %-26s %-26s %s inputs in %s\n' "$fn" "$pkg" "${execs:-?}" "$DURATION" >&2
done
echo "fuzz: ${#targets[@]} targets passed in $((SECONDS - start))s" >&2
