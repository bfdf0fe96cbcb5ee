package settings

// Progressive delivery: the canary strategy, its traffic gates, the
// post-swap watch and Application Insights (release annotations, gates).
func init() {
	release := []string{"release"}
	Register(
		Setting{Name: "strategy", Default: "swap", Enum: []string{"swap", "canary"}, Group: "Progressive delivery", Commands: release,
			Description: "swap: swap the warmed-up slot into production at once; canary: first route a growing share of production's new visitors to the slot (App Service traffic routing), judged by the gates at each step"},
		Setting{Name: "canary-steps", Kind: List, Default: "5,25,50", Group: "Progressive delivery", Commands: release,
			Description: "canary: the shares of new visitors, in percent, increasing and below 100; the swap completes the last step"},
		Setting{Name: "canary-interval", Kind: Duration, Default: "5m", Min: "1s", Max: "24h", Group: "Progressive delivery", Commands: release,
			Description: "canary: how long each step's traffic is judged before the next"},
		Setting{Name: "max-failure-rate", Default: "1%", Group: "Progressive delivery", Commands: release,
			Description: "gate: the largest share of failed requests (5xx, refused connections) allowed, as a percentage such as 1% or 0.5%"},
		Setting{Name: "max-p95", Kind: Duration, Min: "1ms", Max: "1h", Group: "Progressive delivery", Commands: release,
			Description: "gate: the largest 95th-percentile request duration allowed (e.g. 800ms; default: not checked)"},
		Setting{Name: "min-requests", Kind: Int, Default: "50", Min: "1", Max: "100000000", Group: "Progressive delivery", Commands: release,
			Description: "gate: fewer requests in a window is not enough evidence (the gate waits one more window, then fails); never a pass"},
		Setting{Name: "watch", Kind: Duration, Default: "0s", Min: "0s", Max: "24h", Group: "Progressive delivery", Commands: release,
			Description: "after the swap, judge production's traffic for this long (e.g. 10m) and swap back at the first breach (0s: off)"},
		Setting{Name: "app-insights", Group: "Progressive delivery", Commands: release,
			Description: "Application Insights resource id for the gates and release annotations (default: the component named by the site's APPLICATIONINSIGHTS_CONNECTION_STRING, if any; without one the gates use djdeploy's own probes)"},
		Setting{Name: "app-insights-endpoint", Env: "DJDEPLOY_APPINSIGHTS_ENDPOINT", Default: "https://api.applicationinsights.io", Group: "Progressive delivery", Commands: release,
			Description: "Application Insights query API (sovereign clouds, the emulator)"},
	)
}

// Multi-region waves.
func init() {
	release := []string{"release"}
	Register(
		Setting{Name: "targets", Kind: List, Group: "Progressive delivery", Commands: release,
			Description: "release to several apps (regions behind one Front Door) in this order, each as RESOURCE_GROUP/APP[/SLOT] (slot default: --slot): one build and static sync, then per region deploy, warm-up, canary or swap and --watch; the CDN is purged after the last region"},
		Setting{Name: "on-wave-failure", Default: "keep", Enum: []string{"keep", "rollback"}, Group: "Progressive delivery", Commands: release,
			Description: "when a region fails (it is swapped back and later regions are untouched): keep the new release in earlier regions, or swap them back too"},
	)
}

// Front Door rotation.
func init() {
	Register(Setting{Name: "origin-rotation", Kind: Bool, Default: "false", Group: "Progressive delivery", Commands: []string{"release"},
		Description: "take the app's origin in the Front Door profile (cdn-profile) out of rotation while it swaps, so Front Door sends its visitors to the other regions' origins, and put it back after"})
}
