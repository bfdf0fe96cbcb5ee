// Package webfiles knows how browsers want static files served: the
// Content-Type of each web file type, which types are text, and which file
// names carry a content hash. Build (release.json) and static sync (blob
// headers) both use it, so a file's type is decided in one place.
package webfiles

import (
	"path"
	"regexp"
	"strings"
)

// types is explicit rather than mime.TypeByExtension, whose answers depend
// on the machine's /etc/mime.types (a CI runner may serve .js as text/plain,
// the complaint against azcopy and az CLI in peers.md).
var types = map[string]string{
	".css":         "text/css",
	".js":          "text/javascript",
	".mjs":         "text/javascript",
	".cjs":         "text/javascript",
	".map":         "application/json",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".html":        "text/html",
	".htm":         "text/html",
	".txt":         "text/plain",
	".md":          "text/markdown",
	".csv":         "text/csv",
	".xml":         "application/xml",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/vnd.microsoft.icon",
	".bmp":         "image/bmp",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
}

// textual types get "; charset=utf-8" and are worth pre-compressing.
func textual(ct string) bool {
	return strings.HasPrefix(ct, "text/") || ct == "application/json" || ct == "application/manifest+json" ||
		ct == "application/xml" || ct == "image/svg+xml"
}

// ContentType returns the Content-Type header for a file name.
func ContentType(name string) string {
	ct, ok := types[strings.ToLower(path.Ext(name))]
	if !ok {
		return "application/octet-stream"
	}
	if textual(ct) {
		return ct + "; charset=utf-8"
	}
	return ct
}

// IsText reports whether the name's type is text (compressible).
func IsText(name string) bool {
	ct, ok := types[strings.ToLower(path.Ext(name))]
	return ok && textual(ct)
}

// hashedName matches Django's ManifestStaticFilesStorage names
// (name.<12 hex>.ext) and the common bundler forms (name.<8+ hex|base36>.ext,
// name-<8+ hex>.ext). The hash is group 1 or 2.
var hashedName = regexp.MustCompile(`[.-]([0-9a-f]{8,64})\.[A-Za-z0-9]+(?:\.map)?$|\.([0-9a-z]{8,})\.(?:js|css|mjs)$`)

// LooksHashed guesses from the name alone whether it carries a content
// hash. Use it only when no manifest (staticfiles.json) says so.
func LooksHashed(name string) bool {
	m := hashedName.FindStringSubmatch(path.Base(name))
	// A hashed name is cached as immutable for a year, so a word must not
	// pass for a hash (jquery.validate.js, app.analytics.js): require a
	// digit. A real hash of 8+ characters lacks one rarely, and then only
	// gets the short cache.
	return m != nil && strings.ContainsAny(m[1]+m[2], "0123456789")
}
