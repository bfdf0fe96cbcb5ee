#!/usr/bin/env bash
# make demo: two releases of examples/django-app through the local emulator
# (App Service + ARM + Front Door) and Azurite, with no Azure account.
#
#  1. starts `djdeploy emulator` (which starts Azurite) and reads its export block;
#  2. releases a copy of the example app: staging slot, swap, production;
#  3. edits one template and one css file and releases again: only the files
#     whose content changed upload, and only changed names without a content
#     hash are purged from the CDN;
#  4. shows `djdeploy status` and `djdeploy releases`;
#  5. prints the production URL and the static URL, and keeps serving them
#     until Ctrl-C (or exits at once when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${DJDEPLOY_BIN:-bin/djdeploy}
PY=${DJDEPLOY_PYTHON:-.tools/py/bin/python}
WORK=.demo

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN is missing: run 'make build' (make demo does it for you)"
"$PY" -c 'import django, gunicorn, uvicorn' 2>/dev/null \
  || die "$PY cannot import Django, gunicorn and uvicorn: run 'make deps' (it builds .tools/py, Django 5.2 on Python 3.12, from .ci/python/py.txt), or set DJDEPLOY_PYTHON"

rm -rf "$WORK"
mkdir -p "$WORK"

say "== starting the emulator (ARM, Kudu, Front Door, token authority) and Azurite"
"$BIN" emulator --python "$PY" --env-file "$WORK/emulator.env" --state-dir "$WORK/emulator" >"$WORK/emulator.log" 2>&1 &
EMU=$!
stop() {
  kill "$EMU" 2>/dev/null || true
  wait "$EMU" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 120); do
  [ -s "$WORK/emulator.env" ] && break
  kill -0 "$EMU" 2>/dev/null || { cat "$WORK/emulator.log" >&2; die "the emulator stopped at start (log above)"; }
  sleep 0.5
done
[ -s "$WORK/emulator.env" ] || die "the emulator did not start within 60s; see $WORK/emulator.log"
# shellcheck disable=SC1091
set -a; . "$WORK/emulator.env"; set +a

cp -r examples/django-app "$WORK/app"
rm -rf "$WORK/app/staticfiles" "$WORK/app/db.sqlite3"

release() { # $1: name of the JSON report
  "$BIN" release --project "$WORK/app" --python "$PY" --fix-settings --check-release --static-grace 0s --json >"$WORK/$1.json"
}
field() { # $1: report, $2: python expression over r
  "$PY" -c "import json,sys; r=json.load(open('$WORK/$1.json'))['result']; print($2)"
}

say "== release 1: the example app, to staging, then swapped into production"
release release1
say "   release $(field release1 "r['release_id']"): $(field release1 "r['static_uploaded']") static files uploaded, $(field release1 "len(r['purged_paths'] or [])") paths purged"

say "== editing one template and one css file"
sed -i 's|Hello from Django on App Service|Hello again: this is the second release|' "$WORK/app/pages/templates/pages/home.html"
printf '\n/* second release */\n.banner { border-bottom: 4px solid #0078d4; }\n' >>"$WORK/app/pages/static/pages/css/site.css"

say "== release 2: only what changed uploads; only un-hashed changed paths are purged"
release release2
say "   release $(field release2 "r['release_id']"): uploaded $(field release2 "r['static_uploaded']") files, $(field release2 "r['static_skipped']") unchanged:"
field release2 "'\n'.join('     + '+p for p in (r['static_changed'] or []))" >&2
say "   purged from the CDN:"
field release2 "'\n'.join('     - '+p for p in (r['purged_paths'] or [])) or '     (nothing)'" >&2

URL=$(field release2 "r['url']")
STATIC=$(field release2 "r['static_url']")
curl -fsS "$URL/" | grep -q "second release" || die "production at $URL does not serve the second release"

say "== what runs where, and the history (djdeploy status, djdeploy releases; 'djdeploy rollback' would put release 1 back)"
"$BIN" status >&2
"$BIN" releases >&2

printf '\nproduction: %s\nstatic:     %s\n' "$URL/" "$STATIC"
if [ "${CI:-}" = "true" ]; then
  exit 0
fi
say "serving until Ctrl-C (the emulator's log is $WORK/emulator.log)"
wait "$EMU"
