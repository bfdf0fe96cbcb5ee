package harness

import (
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// secrets are the values no output may contain, by a name for messages.
type secrets map[string]string

// add records a secret; short values would match ordinary text and prove
// nothing, so the tests use long random ones.
func (s secrets) add(t *testing.T, name, value string) {
	t.Helper()
	if len(value) < 12 {
		t.Fatalf("secret %s is too short to scan for (%d bytes)", name, len(value))
	}
	s[name] = value
}

// accountKey is the AccountKey of a storage connection string.
func accountKey(t *testing.T, conn string) string {
	t.Helper()
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "AccountKey") {
			return v
		}
	}
	t.Fatalf("connection string has no AccountKey")
	return ""
}

// encodings are the forms a secret takes when a program logs it encoded:
// raw, base64 (standard and URL, padded or not) and URL-encoded.
func encodings(v string) map[string]string {
	b := []byte(v)
	out := map[string]string{
		"raw":                          v,
		"base64":                       base64.StdEncoding.EncodeToString(b),
		"base64 raw":                   base64.RawStdEncoding.EncodeToString(b),
		"base64url":                    base64.URLEncoding.EncodeToString(b),
		"base64url raw":                base64.RawURLEncoding.EncodeToString(b),
		"query-escaped":                url.QueryEscape(v),
		"path-escaped":                 url.PathEscape(v),
		"go-githubactions data escape": strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(v),
	}
	return out
}

// maskLines are the lines that hand a secret to the runner so that it hides
// it: they must contain it, and are the only ones that may.
var maskLine = regexp.MustCompile(`^(::add-mask::|##vso\[task\.setsecret\])`)

// jwtRE finds anything shaped like a JWT (header.payload.): access tokens
// the emulator's authority issued are secrets the test cannot know ahead.
var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}`)

// findLeaks scans data for every secret in every encoding and for JWTs,
// and returns what it found (secret cut out). With masks, the lines that
// hand a secret to the runner are skipped and their values returned.
func findLeaks(data string, sec secrets, masks bool) (found, maskValues []string) {
	var kept []string
	for _, l := range strings.Split(data, "\n") {
		if masks && maskLine.MatchString(l) {
			maskValues = append(maskValues, maskLine.ReplaceAllString(strings.TrimRight(l, "\r"), ""))
			continue
		}
		kept = append(kept, l)
	}
	text := strings.Join(kept, "\n")
	names := make([]string, 0, len(sec))
	for n := range sec {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		encs := encodings(sec[n])
		forms := make([]string, 0, len(encs))
		for f := range encs {
			forms = append(forms, f)
		}
		sort.Strings(forms)
		for _, enc := range forms {
			v := encs[enc]
			if i := strings.Index(text, v); i >= 0 {
				found = append(found, n+" ("+enc+"): ..."+excerpt(text, i, len(v))+"...")
			}
		}
	}
	if m := jwtRE.FindStringIndex(text); m != nil {
		found = append(found, "a JWT: ..."+excerpt(text, m[0], m[1]-m[0])+"...")
	}
	return found, maskValues
}

// leaks fails t for each secret findLeaks finds in data (named where).
func leaks(t *testing.T, where string, data string, sec secrets, masks bool) (maskValues []string) {
	t.Helper()
	found, maskValues := findLeaks(data, sec, masks)
	for _, f := range found {
		t.Errorf("%s contains %s", where, f)
	}
	return maskValues
}

// excerpt shows where a leak is, with the secret itself cut out.
func excerpt(text string, i, n int) string {
	from, to := max(0, i-60), min(len(text), i+n+60)
	return text[from:i] + "<SECRET>" + text[i+n:to]
}

// scanFiles scans every regular file under dir (logs the emulator and the
// app processes wrote) except archives.
func scanFiles(t *testing.T, dir string, sec secrets) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".zip", ".sqlite3", ".pyc", ".png", ".svg", ".gz", ".br":
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > 8<<20 || !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		leaks(t, p, string(b), sec, false)
		return nil
	})
}
