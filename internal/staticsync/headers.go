package staticsync

import (
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/webfiles"
)

// Cache-Control defaults. A content-hashed name never changes content, so
// browsers and the CDN may keep it for a year without asking again; any
// other name may change with the next release and gets a short TTL.
const (
	ImmutableCacheControl = "public, max-age=31536000, immutable"
	DefaultCacheControl   = "public, max-age=300"
)

// HeaderRule overrides Cache-Control for files matching Glob.
type HeaderRule struct {
	Glob         string
	CacheControl string
}

// ParseHeaderRules reads the static-headers setting: GLOB=VALUE entries
// separated by newlines or ';' (Cache-Control values contain commas, so
// commas cannot separate entries). A glob without '/' matches the file
// name in any folder; with '/', the path below the prefix (** matches
// folders).
func ParseHeaderRules(raw string) ([]HeaderRule, error) {
	var out []HeaderRule
	for _, entry := range strings.FieldsFunc(raw, func(r rune) bool { return r == '\n' || r == ';' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		glob, val, ok := strings.Cut(entry, "=")
		// A leading '/' means the prefix root; trimmed before the check, so
		// "/=value" is an error rather than a rule that matches nothing.
		glob, val = strings.TrimLeft(strings.TrimSpace(glob), "/"), strings.TrimSpace(val)
		if !ok || glob == "" || val == "" {
			return nil, problem.Usagef("write entries as GLOB=Cache-Control value, e.g. 'robots.txt=no-cache; fonts/**=public, max-age=86400'",
				"static-headers entry %q has no GLOB=VALUE form", entry)
		}
		if !doublestar.ValidatePattern(glob) {
			return nil, problem.Usagef("fix the glob (use *, ?, [..] and ** for folders)", "static-headers: invalid glob %q", glob)
		}
		out = append(out, HeaderRule{Glob: glob, CacheControl: val})
	}
	return out, nil
}

// Headers decides each file's headers.
type Headers struct {
	// CacheControl is for names without a content hash ("" = DefaultCacheControl).
	CacheControl string
	// Rules override either default; the first match wins.
	Rules []HeaderRule
	// Compress is "" (off) or "gzip".
	Compress string
}

// cacheControl returns the Cache-Control for a file below the prefix.
func (h Headers) cacheControl(rel string, hashed bool) string {
	base := rel[strings.LastIndex(rel, "/")+1:]
	for _, r := range h.Rules {
		target := rel
		if !strings.Contains(r.Glob, "/") {
			target = base
		}
		if ok, _ := doublestar.Match(r.Glob, target); ok {
			return r.CacheControl
		}
	}
	if hashed {
		return ImmutableCacheControl
	}
	if h.CacheControl != "" {
		return h.CacheControl
	}
	return DefaultCacheControl
}

// compress reports whether a file is stored gzip-compressed: text types
// only, when compression is on. (Images, fonts and archives are already
// compressed.)
func (h Headers) compress(rel string) bool {
	return h.Compress == "gzip" && webfiles.IsText(rel)
}
