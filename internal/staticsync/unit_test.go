package staticsync

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func TestCacheControlRules(t *testing.T) {
	rules, err := ParseHeaderRules("robots.txt=no-cache; fonts/**=public, max-age=86400\n*.html = no-store\n# comment")
	if err != nil {
		t.Fatal(err)
	}
	h := Headers{CacheControl: "public, max-age=60", Rules: rules}
	for _, tc := range []struct {
		rel    string
		hashed bool
		want   string
	}{
		{"robots.txt", false, "no-cache"},
		{"sub/robots.txt", false, "no-cache"}, // no '/' in the glob: any folder
		{"fonts/a/b.5f3c2a1b9e7d.woff2", true, "public, max-age=86400"},
		{"x/fonts/b.woff2", false, "public, max-age=60"}, // '/' in the glob: anchored
		{"index.html", false, "no-store"},
		{"css/site.5f3c2a1b9e7d.css", true, ImmutableCacheControl},
		{"css/site.css", false, "public, max-age=60"},
	} {
		if got := h.cacheControl(tc.rel, tc.hashed); got != tc.want {
			t.Errorf("cacheControl(%q) = %q, want %q", tc.rel, got, tc.want)
		}
	}
	if got := (Headers{}).cacheControl("a.css", false); got != DefaultCacheControl {
		t.Errorf("default = %q", got)
	}
	for _, bad := range []string{"no-equals-sign", "=value", "a[=x"} {
		if _, err := ParseHeaderRules(bad); err == nil {
			t.Errorf("ParseHeaderRules(%q) accepted", bad)
		} else if p, ok := problem.As(err); !ok || !p.Usage {
			t.Errorf("ParseHeaderRules(%q): not a usage error: %v", bad, err)
		}
	}
}

func TestValidateContainerName(t *testing.T) {
	for name, ok := range map[string]bool{
		"static": true, "my-site-2": true, "abc": true, "$web": true,
		"ab": false, "Static": false, "my_site": false, "-static": false, "static-": false, "a--b": false,
		strings.Repeat("a", 63): true, strings.Repeat("a", 64): false,
	} {
		err := ValidateContainerName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateContainerName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && problem.ExitCode(err) != problem.ExitUsage {
			t.Errorf("%q: exit code %d", name, problem.ExitCode(err))
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "static": "static/", "/a/b/": "a/b/", `a\b`: "a/b/"} {
		if got, err := NormalizePrefix(in); err != nil || got != want {
			t.Errorf("NormalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a/../b", "a//b", "./a"} {
		if _, err := NormalizePrefix(bad); err == nil {
			t.Errorf("NormalizePrefix(%q) accepted", bad)
		}
	}
}

func TestRedact(t *testing.T) {
	in := "GET http://h/c?sv=2020&sig=abc%2Fdef&se=x failed; DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3cr3t==;"
	out := Redact(in)
	if strings.Contains(out, "abc%2Fdef") || strings.Contains(out, "S3cr3t") || !strings.Contains(out, "sig=REDACTED") {
		t.Errorf("Redact = %q", out)
	}
	c := &Client{secrets: []string{"supersecretvalue"}}
	if got := c.redact("x supersecretvalue y"); strings.Contains(got, "supersecret") {
		t.Errorf("redact = %q", got)
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad container":         {ConnectionString: "AccountName=a;AccountKey=eA==", Container: "Bad_Name"},
		"malformed conn string": {ConnectionString: "not a connection string; AccountKey=topsecretkey", Container: "static"},
		"no credentials":        {Container: "static"},
		"http to remote":        {ConnectionString: "AccountName=a;AccountKey=eA==;BlobEndpoint=http://example.com/a", Container: "static"},
	} {
		_, err := Open(cfg)
		if problem.ExitCode(err) != problem.ExitUsage {
			t.Errorf("%s: %v (exit %d), want a usage error", name, err, problem.ExitCode(err))
		}
		if err != nil && strings.Contains(err.Error(), "topsecretkey") {
			t.Errorf("%s: secret in error: %v", name, err)
		}
	}
}

func TestReadSourceStaticfilesJSON(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"css/site.css":              "a",
		"css/site.5f3c2a1b9e7d.css": "a",
		"js/vendor.0123abcd.js":     "pattern says hashed, manifest says no",
		"staticfiles.json":          `{"version":"1.1","paths":{"css/site.css":"css/site.5f3c2a1b9e7d.css"}}`,
	})
	src, err := ReadSource(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range src.Files {
		got[f.Rel] = f.Hashed
		if len(f.MD5) != 16 {
			t.Errorf("%s: no MD5", f.Rel)
		}
	}
	if !got["css/site.5f3c2a1b9e7d.css"] || got["css/site.css"] || got["js/vendor.0123abcd.js"] || src.Manifest != "staticfiles.json" {
		t.Errorf("hashed flags %v (from %q)", got, src.Manifest)
	}
	if _, err := ReadSource(context.Background(), dir+"/missing", ""); problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("missing folder: %v", err)
	}
	// The same files make the same release id.
	again, _ := ReadSource(context.Background(), dir, "")
	if again.ReleaseID != src.ReleaseID || !ValidReleaseID(src.ReleaseID) {
		t.Errorf("release ids %q %q", src.ReleaseID, again.ReleaseID)
	}
}

// TestReadSourceRefusesNamesBlobStorageChanges: back\slash.css was stored
// as back/slash.css, so it re-uploaded on every sync, was purged under the
// wrong path and deleted by prune; such names are refused by name.
func TestReadSourceRefusesNamesBlobStorageChanges(t *testing.T) {
	for name, want := range map[string]string{
		`back\slash.css`: "backslash",
		"line\rfeed.css": `'\r'`,
		"dots.css.":      "ending with a dot",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSource(context.Background(), dir, "")
		p, ok := problem.As(err)
		if !ok || !p.Usage || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("%q: %v, want a usage error naming the file and saying %s", name, err, want)
		}
	}
}
