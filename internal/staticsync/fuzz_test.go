package staticsync

import (
	"crypto/md5"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/webfiles"
)

// FuzzPlanHeaders drives the sync's per-file decisions (blob name,
// Content-Type, Cache-Control, gzip, upload/headers/skip) with any
// static-headers and static-prefix settings and any file path:
//   - bad settings are usage errors (exit 2), never a panic;
//   - every file gets a blob name under the prefix, a Content-Type and a
//     Cache-Control;
//   - "immutable" is given only to a hashed name or by the user's own rule,
//     so a file whose name does not change with its content is never kept
//     for a year by browsers;
//   - the first matching rule wins ("**" first overrides everything);
//   - only text types are gzipped, and only with compression on;
//   - a blob with the same content and headers is skipped, one with other
//     headers only gets its headers set, one with other content is uploaded.
func FuzzPlanHeaders(f *testing.F) {
	for _, s := range []struct {
		rules, prefix, rel string
		hashed, gzip       bool
	}{
		{"", "static", "css/site.5f3c2a1b9e7d.css", true, false},
		{"", "", "css/site.css", false, true},
		{"robots.txt=no-cache; fonts/**=public, max-age=86400", "static/", "fonts/roboto.woff2", false, false},
		{"robots.txt=no-cache; fonts/**=public, max-age=86400", "static/", "robots.txt", false, true},
		{"*.html=no-cache\n# comment\n*.js=public, max-age=60", "assets/v2", "admin/js/core.0a1b2c3d4e5f.js", true, true},
		{"/admin/**=private, max-age=0", "/static/", "admin/css/base.css", false, true},
		{"**=public, max-age=31536000, immutable", "", "index.html", false, false},
		{"=x", "", "a", false, false},
		{"[=y", "", "a", false, false},
		{"a=", "", "a", false, false},
		{"{a,b}/*.css=no-store", "..", "a/x.css", false, false},
		{"*.svg=public, max-age=600", "static\\img", "img/logo.svg", false, true},
		{"", "a//b", "x", false, false},
		{"", "", "dir with space/ü.js", false, true},
	} {
		f.Add(s.rules, s.prefix, s.rel, s.hashed, s.gzip)
	}
	f.Fuzz(func(t *testing.T, rawRules, rawPrefix, rawRel string, hashed, gz bool) {
		rules, err := ParseHeaderRules(rawRules)
		if err != nil {
			if p, ok := problem.As(err); !ok || !p.Usage {
				t.Fatalf("ParseHeaderRules(%q): %v is not a usage error", rawRules, err)
			}
			return
		}
		userImmutable := false
		for _, r := range rules {
			if r.Glob == "" || strings.HasPrefix(r.Glob, "/") || r.CacheControl == "" || strings.TrimSpace(r.CacheControl) != r.CacheControl || !doublestar.ValidatePattern(r.Glob) {
				t.Fatalf("ParseHeaderRules(%q) made rule %+v", rawRules, r)
			}
			if strings.Contains(r.CacheControl, "immutable") {
				userImmutable = true
			}
		}
		prefix, err := NormalizePrefix(rawPrefix)
		if err != nil {
			if p, ok := problem.As(err); !ok || !p.Usage {
				t.Fatalf("NormalizePrefix(%q): %v is not a usage error", rawPrefix, err)
			}
			return
		}
		if prefix != "" && (!strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "//")) {
			t.Fatalf("NormalizePrefix(%q) = %q", rawPrefix, prefix)
		}
		rel := cleanRel(rawRel)
		if rel == "" {
			return
		}
		sum := md5.Sum([]byte(rel))
		file := &File{Rel: rel, Size: int64(len(rel)), MD5: sum[:], Hashed: hashed}
		c := &Client{prefix: prefix}
		h := Headers{Rules: rules}
		if gz {
			h.Compress = "gzip"
		}
		it := c.plan(&Source{Files: []*File{file}}, nil, SyncOptions{Headers: h})[0]
		if it.blob != prefix+rel || it.act != actUpload {
			t.Fatalf("%q: blob %q, action %v; want %q, upload", rel, it.blob, it.act, prefix+rel)
		}
		if it.ct == "" || it.ct != webfiles.ContentType(rel) {
			t.Fatalf("%q: Content-Type %q", rel, it.ct)
		}
		if it.cc == "" {
			t.Fatalf("%q: no Cache-Control", rel)
		}
		if strings.Contains(it.cc, "immutable") && !hashed && !userImmutable {
			t.Fatalf("%q is not hashed but gets Cache-Control %q", rel, it.cc)
		}
		if len(rules) == 0 {
			want := DefaultCacheControl
			if hashed {
				want = ImmutableCacheControl
			}
			if it.cc != want {
				t.Fatalf("%q (hashed=%v) without rules: Cache-Control %q, want %q", rel, hashed, it.cc, want)
			}
		}
		if it.gzip != (gz && webfiles.IsText(rel)) {
			t.Fatalf("%q: gzip=%v with compression %v, text %v", rel, it.gzip, gz, webfiles.IsText(rel))
		}
		// "**" as the first rule matches every file, in every folder.
		first := Headers{Rules: append([]HeaderRule{{Glob: "**", CacheControl: "no-cache"}}, rules...)}
		if got := first.cacheControl(rel, hashed); got != "no-cache" {
			t.Fatalf("%q: a leading **=no-cache rule gave %q", rel, got)
		}

		// The same blob is skipped; other headers are set in place; other
		// content is uploaded again.
		same := &remote{size: file.Size, md5: file.MD5, ct: it.ct, cc: it.cc}
		if it.gzip {
			same = &remote{size: 1, md5: []byte{1}, ct: it.ct, cc: it.cc, enc: "gzip", compress: "gzip",
				srcMD5: b64(file.MD5), stored: b64([]byte{1})}
		}
		for _, tc := range []struct {
			mod  func(r *remote)
			want action
		}{
			{func(*remote) {}, actSkip},
			{func(r *remote) { r.cc = "private" }, actHeaders},
			{func(r *remote) { r.ct = "text/plain" }, actHeaders},
			{func(r *remote) { r.md5 = []byte{2}; r.stored = b64([]byte{1}) }, actUpload},
			{func(r *remote) { r.md5 = nil }, actUpload},
		} {
			r := *same
			tc.mod(&r)
			if tc.want == actHeaders && r.ct == it.ct && r.cc == it.cc {
				tc.want = actSkip // the file already has those headers
			}
			got := c.plan(&Source{Files: []*File{file}}, map[string]*remote{it.blob: &r}, SyncOptions{Headers: h})[0]
			if got.act != tc.want {
				t.Fatalf("%q against %+v: action %v, want %v", rel, r, got.act, tc.want)
			}
		}
	})
}

// cleanRel turns any string into a path the static walk could produce.
func cleanRel(s string) string {
	var out []string
	for _, seg := range strings.Split(s, "/") {
		if seg != "" && seg != "." && seg != ".." {
			out = append(out, seg)
		}
	}
	return strings.Join(out, "/")
}

// Found by FuzzPlanHeaders: "/=value" made a rule with an empty glob that
// matched no file, silently.
func TestParseHeaderRulesRootOnly(t *testing.T) {
	for _, raw := range []string{"/=no-cache", " / = no-cache", "//=x"} {
		if _, err := ParseHeaderRules(raw); problem.ExitCode(err) != problem.ExitUsage {
			t.Errorf("ParseHeaderRules(%q) = %v, want a usage error", raw, err)
		}
	}
	rules, err := ParseHeaderRules("/robots.txt=no-cache")
	if err != nil || len(rules) != 1 || rules[0].Glob != "robots.txt" {
		t.Errorf("leading slash: %+v, %v", rules, err)
	}
}
