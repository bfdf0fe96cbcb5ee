// Package redact removes credentials carried inside text that djdeploy
// prints: the signature and signed fields of a shared access signature
// (SAS) in any URL, whether or not djdeploy knew the URL was secret.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// sasFields are the query parameters of a Blob Storage SAS (service,
// account and user delegation SAS): sig is the HMAC itself; the others are
// the signed fields (permissions, expiry, the delegating key's identity),
// which together with sig make a working credential and on their own tell
// an attacker what the token allows and until when.
var sasFields = []string{
	"sig", "signature", "sv", "ss", "srt", "sp", "se", "st", "sip", "spr", "sr", "si", "sdd",
	"skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "ses",
}

// sasParam matches one SAS field in a URL query (after ? or &, or at the
// start of a bare query string), up to the next separator.
var sasParam = regexp.MustCompile(`(?i)(^|[?&;=])(` + strings.Join(sasFields, "|") + `)=[^&;\s"'#<>]*`)

// Mask is what replaces a redacted value.
const Mask = "REDACTED"

// SAS replaces the value of every SAS field found in s with REDACTED; the
// field names stay, so a reader still sees that a SAS was given.
func SAS(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	return sasParam.ReplaceAllString(s, "${1}${2}="+Mask)
}

// HasSAS reports whether raw is a URL (or bare query) carrying a SAS
// signature.
func HasSAS(raw string) bool {
	_, q, ok := strings.Cut(raw, "?")
	if !ok {
		q = raw
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return sasParam.MatchString(raw) && strings.Contains(strings.ToLower(raw), "sig=")
	}
	return v.Get("sig") != "" || v.Get("signature") != ""
}

// SASSecrets are the strings to mask for a URL carrying a SAS: the whole
// URL, its query, and the signature as written and decoded (a CI masks
// exact strings, and a message may show any of these forms). Nil when raw
// carries none.
func SASSecrets(raw string) []string {
	raw = strings.TrimSpace(raw)
	if !HasSAS(raw) {
		return nil
	}
	out := []string{raw}
	if _, q, ok := strings.Cut(raw, "?"); ok && q != "" {
		out = append(out, q)
	}
	for _, m := range regexp.MustCompile(`(?i)(?:^|[?&])(?:sig|signature)=([^&#\s]+)`).FindAllStringSubmatch(raw, -1) {
		out = append(out, m[1])
		if d, err := url.QueryUnescape(m[1]); err == nil && d != m[1] {
			out = append(out, d)
		}
	}
	return out
}

// MinMasked is the shortest value Maskable picks: shorter ones ("true",
// "1", "prod") would hide ordinary words all over a log and protect
// nothing a guess would not find.
const MinMasked = 8

// Maskable returns the values of an environment (app settings, build-env)
// that output must not show: every value of MinMasked characters or more,
// except public http(s) URLs (no user info, no query: a STATIC_URL or a
// CDN host, which djdeploy prints on purpose). Values of any other shape,
// a key, a password, a postgres:// URL with credentials, are masked
// whatever their name, since a name rarely says a value is public. The
// exceptions are the few names App Service, Python and djdeploy define as
// configuration (publicName), whose values a traceback or a report must
// show to be understood.
func Maskable(env map[string]string) []string {
	var out []string
	for k, v := range env {
		v = strings.TrimSpace(v)
		if len(v) < MinMasked || publicName(k) || publicList(v) {
			continue
		}
		out = append(out, v)
	}
	return out
}

// publicName: settings defined by App Service (WEBSITE_*, SCM_*), Python,
// Django's settings module and djdeploy's own (release id).
func publicName(k string) bool {
	k = strings.ToUpper(k)
	switch k {
	case "DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "ENABLE_ORYX_BUILD", "PATH", "HOME", "LANG":
		return true
	}
	return strings.HasPrefix(k, "WEBSITE_") || strings.HasPrefix(k, "SCM_") || strings.HasPrefix(k, "DJDEPLOY_")
}

// publicList: a value made only of public URLs and host or module names
// (ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, a settings module), comma- or
// space-separated. Masking those would hide the site's own address in
// every later line of a CI log.
func publicList(v string) bool {
	toks := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	if len(toks) == 0 {
		return false
	}
	for _, t := range toks {
		if !publicURL(t) && !hostName.MatchString(strings.TrimPrefix(t, ".")) {
			return false
		}
	}
	return true
}

// hostName is a dotted name whose last label is letters (a top-level
// domain, or a module's last part): long random labels and digits there,
// which tokens and keys have, do not match.
var hostName = regexp.MustCompile(`^([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$`)

func publicURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil && u.RawQuery == "" && !strings.ContainsAny(v, " \t")
}

// Values replaces each of values in s with ***, longest first (so a value
// that contains another is hidden whole).
func Values(s string, values []string) string {
	vs := append([]string(nil), values...)
	sortByLenDesc(vs)
	for _, v := range vs {
		if len(v) >= MinMasked {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

func sortByLenDesc(vs []string) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && len(vs[j]) > len(vs[j-1]); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}
