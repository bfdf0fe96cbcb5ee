package settings

// Settings of `djdeploy deploy` and `djdeploy swap`, and the Azure Pipelines
// service connection shared by every command that signs in. The app,
// resource group and slot are shared and live in decl_core.go.
func init() {
	deploy := []string{"deploy"}
	swap := []string{"swap"}
	azure := []string{"deploy", "swap", "purge", "doctor", "static"}
	Register(
		Setting{Name: "service-connection", Group: "Azure",
			Description: "Azure Pipelines service connection id (workload identity federation) for the azure-pipelines credential; AZURESUBSCRIPTION_SERVICE_CONNECTION_ID is read when unset",
			Commands:    azure},

		Setting{Name: "package", NotRelease: true, Group: "App Service",
			Description: "zip to deploy (app.zip from 'djdeploy build'); release.json beside it, if present, says which app settings and Python version it needs",
			Commands:    deploy},
		Setting{Name: "deploy-timeout", Kind: Duration, Default: "20m", Min: "1s", Max: "24h", Group: "App Service",
			Description: "how long deploy waits for the upload, a deployment already in progress, the build and the app's start before failing",
			Commands:    deploy},
		Setting{Name: "fix-settings", Kind: Bool, Group: "App Service",
			Description: "set the app settings, Python version and startup command the package needs (one write each) instead of failing when they differ; release does so unless this is false",
			Commands:    deploy},
		Setting{Name: "startup-command", Default: "auto", OneLine: true, Group: "App Service",
			Description: "startup command: auto (gunicorn with uvicorn workers on the release's ASGI module, workers sized to the plan), keep (leave the site's), or a command",
			Commands:    deploy},
		Setting{Name: "workers", Kind: Int, Min: "1", Max: "128", Group: "App Service",
			Description: "gunicorn workers for the auto startup command (default 2 x the plan's vCPUs + 1)",
			Commands:    deploy},

		Setting{Name: "target", NotRelease: true, Default: "production", Group: "App Service",
			Description: "slot the deployment slot is swapped with",
			Commands:    swap},
		Setting{Name: "action", NotRelease: true, Default: "swap", Enum: []string{"swap", "preview", "complete", "cancel"}, Group: "App Service",
			Description: "swap: warm up, swap, verify; preview: apply the target's settings to the slot and warm it up; complete: finish a preview; cancel: undo a preview",
			Commands:    swap},
		Setting{Name: "health-path", Group: "App Service",
			Description: "path requested to warm up the slot and verify production (default: the site's health check path, else WEBSITE_SWAP_WARMUP_PING_PATH, else /)",
			Commands:    swap},
		Setting{Name: "health-statuses", Kind: List, Default: "200-399", Group: "App Service",
			Description: "HTTP statuses (codes or ranges) that count as healthy; a redirect to a sign-in page never does",
			Commands:    swap},
		Setting{Name: "warmup-timeout", Kind: Duration, Default: "5m", Min: "1s", Max: "24h", Group: "App Service",
			Description: "how long the slot may take to answer the health path before the swap is abandoned",
			Commands:    swap},
		Setting{Name: "swap-timeout", Kind: Duration, Default: "30m", Min: "1s", Max: "24h", Group: "App Service",
			Description: "how long a swap (Azure's own warm-up included) may take",
			Commands:    swap},
		Setting{Name: "verify-timeout", Kind: Duration, Default: "2m", Min: "1s", Max: "24h", Group: "App Service",
			Description: "how long production may take to answer healthy (and with the expected release) after the swap",
			Commands:    swap},
		Setting{Name: "swap-back-after", Kind: Int, Default: "3", Min: "0", Max: "100", Group: "App Service",
			Description: "swap back as soon as production answers this many server errors (5xx) or refused connections in a row after the swap, instead of waiting out verify-timeout; 0 waits the whole timeout",
			Commands:    swap},
		Setting{Name: "expect-release", NotRelease: true, Group: "App Service",
			Description: "release id production must report after the swap (in the health response body or an X-Release-Id header)",
			Commands:    swap},
		Setting{Name: "no-rollback", Kind: Bool, Group: "App Service",
			Description: "do not swap back when production fails verification after the swap",
			Commands:    swap},
	)
}
