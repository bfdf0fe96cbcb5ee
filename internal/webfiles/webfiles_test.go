package webfiles

import "testing"

func TestContentType(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"app.js", "text/javascript; charset=utf-8"},
		{"mod.MJS", "text/javascript; charset=utf-8"},
		{"site.css", "text/css; charset=utf-8"},
		{"a.js.map", "application/json; charset=utf-8"},
		{"logo.svg", "image/svg+xml; charset=utf-8"},
		{"f.woff2", "font/woff2"},
		{"x.wasm", "application/wasm"},
		{"site.webmanifest", "application/manifest+json; charset=utf-8"},
		{"favicon.ico", "image/vnd.microsoft.icon"},
		{"photo.avif", "image/avif"},
		{"README", "application/octet-stream"},
		{"data.bin", "application/octet-stream"},
	} {
		if got := ContentType(tc.name); got != tc.want {
			t.Errorf("ContentType(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLooksHashed(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"css/site.5f3c2a1b9e7d.css", true},     // Django manifest storage
		{"admin/js/core.0a1b2c3d4e5f.js", true}, // Django manifest storage
		{"js/main.3f9a8b7c.js", true},           // bundler
		{"js/chunk-1a2b3c4d5e.js", true},        // bundler, dash form
		{"css/site.css", false},
		{"js/jquery.min.js", false},
		{"img/logo.png", false},
		{"fonts/roboto.regular.woff2", false},
	} {
		if got := LooksHashed(tc.name); got != tc.want {
			t.Errorf("LooksHashed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
