package webfiles

import (
	"crypto/md5"
	"encoding/hex"
	"mime"
	"path"
	"strings"
	"testing"
)

// realNames are names collectstatic and bundlers really produce, and names
// that only look like them.
var realNames = []string{
	"admin/css/base.css",
	"admin/js/vendor/jquery/jquery.min.js",
	"admin/js/vendor/select2/select2.full.min.js",
	"admin/fonts/Roboto-Regular-webfont.woff",
	"admin/img/icon-addlink.svg",
	"css/site.5f3c2a1b9e7d.css",
	"admin/js/core.0a1b2c3d4e5f.js",
	"js/main.3f9a8b7c.js",
	"js/main.3f9a8b7c.js.map",
	"js/chunk-1a2b3c4d5e.js",
	"assets/index-BpX1tF2a.js",
	"js/jquery.validate.js",
	"js/app.analytics.js",
	"js/jquery.fileupload.js",
	"js/deadbeef.deadbeef.js",
	"favicon.ico",
	"robots.txt",
	"site.webmanifest",
	"data/export.CSV",
	"README",
	".well-known/security.txt",
	"x.",
	"dir.css/file",
	"üñï.cödé.js",
	"\xff\xfe.js",
}

// FuzzContentType: every name gets a usable Content-Type, chosen by its
// extension alone (in any letter case), and the charset parameter is
// there exactly for the types IsText calls text (the ones stored gzipped).
func FuzzContentType(f *testing.F) {
	for _, n := range realNames {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ct := ContentType(name)
		if ct == "" {
			t.Fatalf("ContentType(%q) is empty", name)
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt == "" {
			t.Fatalf("ContentType(%q) = %q, not a media type: %v", name, ct, err)
		}
		if _, has := params["charset"]; has != IsText(name) {
			t.Fatalf("ContentType(%q) = %q, but IsText = %v", name, ct, IsText(name))
		}
		if has := strings.Contains(ct, "; charset=utf-8"); has != IsText(name) {
			t.Fatalf("ContentType(%q) = %q: charset must be utf-8 exactly when textual", name, ct)
		}
		if IsText(name) && !(strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "json") || strings.HasSuffix(mt, "xml")) {
			t.Fatalf("%q is called text but has type %q", name, mt)
		}
		if got := ContentType(swapASCIICase(name)); got != ct {
			t.Fatalf("ContentType depends on letter case: %q -> %q, %q -> %q", name, ct, swapASCIICase(name), got)
		}
		if got := ContentType("static/x" + path.Ext(name)); got != ct {
			t.Fatalf("ContentType is not decided by the extension: %q -> %q, ext %q -> %q", name, ct, path.Ext(name), got)
		}
	})
}

// FuzzLooksHashed: the hashed-name guess never panics, looks only at the
// file name (not its folders), recognises every name Django's
// ManifestStaticFilesStorage makes (name.<12 hex>.ext), and never calls a
// name without a digit hashed: "hashed" means one year immutable in every
// browser, so a plain word (jquery.validate.js) must not pass for a hash.
func FuzzLooksHashed(f *testing.F) {
	for _, n := range realNames {
		f.Add(n, "js")
	}
	f.Fuzz(func(t *testing.T, name, ext string) {
		got := LooksHashed(name)
		base := path.Base(name)
		if !strings.Contains(name, "/") {
			if again := LooksHashed("static/css/" + name); again != got {
				t.Fatalf("LooksHashed(%q) = %v but under a folder %v", name, got, again)
			}
		}
		if got && !strings.ContainsAny(base, "0123456789") {
			t.Fatalf("LooksHashed(%q) = true, but its name has no digit: a word, not a hash", name)
		}

		// Django: stem + "." + md5(content)[:12] + ext.
		stem := strings.TrimSuffix(base, path.Ext(base))
		if stem == "" || stem == "." || stem == "/" || strings.Contains(stem, "/") || !alnum(ext) {
			return
		}
		sum := md5.Sum([]byte(name))
		h := hex.EncodeToString(sum[:])[:12]
		if !strings.ContainsAny(h, "0123456789") {
			return // 12 hex letters: one hash in ~130,000; treated as unhashed, which is safe
		}
		django := "app/static/" + stem + "." + h + "." + ext
		if !LooksHashed(django) {
			t.Fatalf("LooksHashed(%q) = false for a ManifestStaticFilesStorage name", django)
		}
	})
}

func swapASCIICase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

func alnum(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Found while fuzzing LooksHashed: any eight lowercase letters between
// dots passed for a base36 hash, so jquery.validate.js and
// app.analytics.js (no manifest to say otherwise) were served as immutable
// for a year and an upgraded copy never reached returning browsers.
func TestLooksHashedWordsAreNotHashes(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"js/jquery.validate.js", false},
		{"js/app.analytics.js", false},
		{"js/jquery.fileupload.js", false},
		{"css/theme.dark-mode.css", false},
		{"js/a.deadbeef.js", false}, // hex letters only: could be a hash, but a short cache is the safe side
		{"js/main.3f9a8b7c.js", true},
		{"js/app.k2j4h5g6.js", true}, // base36 with digits
		{"css/site.5f3c2a1b9e7d.css", true},
	} {
		if got := LooksHashed(tc.name); got != tc.want {
			t.Errorf("LooksHashed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
