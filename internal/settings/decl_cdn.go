package settings

// Settings of `djdeploy purge`. cdn-profile and cdn-endpoint are shared and
// live in decl_core.go.
func init() {
	purge := []string{"purge"}
	Register(
		Setting{Name: "cdn-resource-group", Group: "CDN",
			Description: "resource group of the CDN or Front Door profile (default: resource-group)",
			Commands:    purge},
		Setting{Name: "domain", Kind: List, Group: "CDN",
			Description: "Front Door domains to purge (default: every domain of the endpoint)",
			Commands:    purge},
		Setting{Name: "path", NotRelease: true, Kind: List, Group: "CDN",
			Description: "URL paths to purge, e.g. /static/css/site.css or /static/*",
			Commands:    purge},
		Setting{Name: "paths-file", NotRelease: true, Group: "CDN",
			Description: "file of URL paths to purge, one per line ('-' reads stdin)",
			Commands:    purge},
		Setting{Name: "changed-file", NotRelease: true, Group: "CDN",
			Description: "changed blob names written by 'djdeploy static sync' (one per line, or JSON); mapped to URL paths through the endpoint's origin path",
			Commands:    purge},
		Setting{Name: "cdn-origin-path", Group: "CDN",
			Description: "origin path of the Front Door route (/<container>[/<prefix>]); classic CDN endpoints report their own",
			Commands:    purge},
		Setting{Name: "purge-max-requests", Kind: Int, Default: "10", Min: "1", Max: "100", Group: "CDN",
			Description: "most purge requests (of 100 paths each) before paths are collapsed into /dir/* wildcards",
			Commands:    purge},
		Setting{Name: "purge-timeout", Kind: Duration, Default: "20m", Min: "1s", Max: "24h", Group: "CDN",
			Description: "how long to wait for the purge to complete",
			Commands:    purge},
		Setting{Name: "no-wait", NotRelease: true, Kind: Bool, Group: "CDN",
			Description: "return once Azure has accepted the purge instead of waiting for it to complete",
			Commands:    purge},
	)
}
