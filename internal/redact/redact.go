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
