package settings

// Settings of `djdeploy static` (sync, prune, the release lock). The
// storage account, container and prefix are shared and live in decl_core.go.
func init() {
	sync := []string{"static sync"}
	prune := []string{"static prune"}
	// Every command that changes a slot or production holds the release
	// lock (mark-production takes none: it only appends to the history).
	locked := []string{"static sync", "static prune", "deploy", "swap"}
	Register(
		Setting{Name: "static-concurrency", Kind: Int, Default: "32", Min: "1", Max: "256", Group: "Static files",
			Description: "how many files are uploaded at once", Commands: sync},
		Setting{Name: "static-cache-control", Default: "public, max-age=300", Group: "Static files",
			Description: "Cache-Control of files whose names carry no content hash (hashed names always get a year, immutable)",
			Commands:    sync},
		Setting{Name: "static-headers", Group: "Static files",
			Description: "per-file Cache-Control overrides, GLOB=VALUE entries separated by newlines or ';' (e.g. 'robots.txt=no-cache; fonts/**=public, max-age=86400'); a glob without '/' matches the file name",
			Commands:    sync},
		Setting{Name: "static-compress", Default: "off", Enum: []string{"off", "gzip"}, Group: "Static files",
			Description: "store text files gzip-compressed with Content-Encoding: gzip (off: let the CDN compress)",
			Commands:    sync},
		Setting{Name: "static-cors-origins", Kind: List, Group: "Static files",
			Description: "origins allowed to fetch the files cross-origin (fonts, module scripts); sets a CORS rule on the storage account",
			Commands:    sync},
		Setting{Name: "release-manifest", NotRelease: true, Group: "Static files",
			Description: "release.json written by 'djdeploy build' (default: release.json beside the static folder, if present)",
			Commands:    sync},
		Setting{Name: "static-keep", Kind: Int, Default: "3", Min: "1", Max: "1000", Group: "Static files",
			Description: "prune keeps the files of this many releases that last reached production", Commands: prune},
		Setting{Name: "static-grace", Kind: Duration, Default: "24h", Min: "0s", Max: "8760h", Group: "Static files",
			Description: "prune keeps files and releases younger than this (pages cached by browsers and the CDN still reference them)",
			Commands:    prune},
		Setting{Name: "lock-timeout", Kind: Duration, Default: "10m", Min: "0s", Max: "24h", Group: "Release",
			Description: "how long a command waits for another release, deploy or swap holding the release lock on the static container before failing",
			Commands:    locked},
	)
}
