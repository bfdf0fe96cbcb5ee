package settings

// Settings only the release takes (the release command takes every setting).
func init() {
	release := []string{"release"}
	Register(
		Setting{Name: "artifact", Group: "Release", Commands: release,
			Description: "prebuilt 'djdeploy build --out' folder from an earlier CI job; the release then skips the build"},
		Setting{Name: "static-url", Group: "Release", Commands: release,
			Description: "public URL of the static files, set on the slot so pages link them (default: the CDN endpoint's URL, else the container's)"},
		Setting{Name: "static-url-setting", Group: "Release", Default: "STATIC_URL", Commands: release,
			Description: "name of the app setting that carries the static files' URL to Django's settings"},
		Setting{Name: "check-release", Kind: Bool, Default: "false", Group: "Release", Commands: release,
			Description: "require the release id in the health answer (body or X-Release-Id) at warm-up and after the swap; the app reports DJDEPLOY_RELEASE_ID"},
		Setting{Name: "pre-swap-command", Group: "Release", Commands: release,
			Description: "command run before the swap, usually 'python manage.py migrate --noinput'; must be idempotent and keep the live release working"},
		Setting{Name: "pre-swap-where", Group: "Release", Default: "ci", Enum: []string{"ci", "slot"}, Commands: release,
			Description: "where the pre-swap command runs: ci (this job, with the slot's app settings as environment) or slot (before gunicorn, on every instance start)"},
		Setting{Name: "smoke-requests", Kind: Int, Default: "0", Min: "0", Max: "100000", Group: "Release", Commands: release,
			Description: "smoke gate: requests sent to the slot before the swap (0: off)"},
		Setting{Name: "smoke-concurrency", Kind: Int, Default: "4", Min: "1", Max: "256", Group: "Release", Commands: release,
			Description: "smoke gate: requests in flight at once"},
		Setting{Name: "smoke-paths", Kind: List, Default: "/", Group: "Release", Commands: release,
			Description: "smoke gate: paths requested round-robin"},
		Setting{Name: "smoke-max-p95", Kind: Duration, Min: "1ms", Max: "1h", Group: "Release", Commands: release,
			Description: "smoke gate: fail the release when the 95th percentile latency is above this (e.g. 800ms; default: no latency gate)"},
		Setting{Name: "skip", Kind: List, Group: "Release", Enum: nil, Commands: release,
			Description: "steps to skip: static-sync, pre-swap, smoke, purge, prune (each is reported as skipped)"},
	)
}
