package settings

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	"gopkg.in/yaml.v3"
)

// FuzzParseFile feeds arbitrary bytes to the djdeploy.yaml parser. Whatever
// the file holds, ParseFile must not panic; what it accepts holds only
// declared, non-secret settings with the kind's shape (lists only for list
// settings); what it rejects is one usage error (exit 2) that names the
// file and never repeats a secret setting's value. What it accepts must
// also be what YAML itself means: the same keys a YAML decoder sees, so
// an alias used as a key or a key given twice cannot change a setting
// behind the user's back.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"app: my-app\nresource-group: rg-web\nslot: staging\n",
		"# djdeploy settings\nsubscription: 00000000-0000-0000-0000-000000000001\napp: shop\nstatic-container: static\nstatic-compress: gzip\n",
		"domain:\n  - www.example.com\n  - example.com\npath: [/static/*, /favicon.ico]\n",
		"health-statuses: 200-399\nhealth-path: /healthz\n",
		"build-env:\n  - DJANGO_SETTINGS_MODULE=site.settings.prod\n",
		"access-token: eyJhbGciOiJSUzI1NiJ9.secret-value-here\n",
		"storage-connection-string: DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0LWtleS12YWx1ZQ==\n",
		"ap: typo\n",
		"resource_group: rg\n",
		"- app\n- slot\n",
		"app: {name: x}\n",
		"app: [a, b]\n",
		"domain: [[a]]\n",
		"app: &a shop\nslot: *a\n",
		"&k app: shop\n*k : other\n",
		"app: shop\napp: shop2\n",
		"<<: {app: x}\n",
		"? [app]\n: x\n",
		"app: \"unterminated\n",
		"app:\t- x\n",
		"---\napp: a\n---\nslot: b\n",
		"%YAML 1.2\n---\napp: a\n",
		"!!map {app: a}\n",
		"app: !!binary aGVsbG8=\n",
		"\xff\xfeapp: a\n",
		"app: null\nslot: ~\n",
	} {
		f.Add([]byte(seed))
	}
	secretNames := map[string]bool{}
	for _, s := range All() {
		if s.Secret {
			secretNames[s.Name] = true
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz/djdeploy.yaml"
		got, err := ParseFile(path, data)
		if err != nil {
			if got != nil {
				t.Errorf("ParseFile returned both a mapping and an error: %v", err)
			}
			p, ok := problem.As(err)
			if !ok || !p.Usage {
				t.Fatalf("error is not a usage problem (exit 2): %T %v", err, err)
			}
			if !strings.Contains(p.What, path) {
				t.Errorf("error does not name the file: %q", p.What)
			}
			if p.Fix == "" {
				t.Errorf("error has no fix: %q", p.What)
			}
			// A secret value written into the file must not come back in
			// the message that CI prints.
			for _, line := range strings.Split(string(data), "\n") {
				k, v, ok := strings.Cut(line, ":")
				v = strings.TrimSpace(v)
				if ok && secretNames[strings.TrimSpace(k)] && len(v) >= 8 && strings.Contains(err.Error(), v) {
					t.Errorf("error repeats the value of secret %s: %q", strings.TrimSpace(k), err.Error())
				}
			}
			return
		}
		if got == nil {
			t.Fatal("ParseFile returned a nil mapping without an error")
		}
		for name := range got {
			s, ok := Lookup(name)
			if !ok {
				t.Fatalf("accepted undeclared setting %q", name)
			}
			if s.Secret {
				t.Fatalf("accepted secret setting %q from a file", name)
			}
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return // blank (form feeds and all) means no settings; YAML may call \f a control character
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("accepted a file that YAML rejects (%v): %v", err, got)
		}
		if a, b := keys(got), keys(doc); a != b {
			t.Fatalf("accepted keys %s, but the YAML mapping has keys %s", a, b)
		}
	})
}

func keys[V any](m map[string]V) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// Found by FuzzParseFile: a key given twice silently kept the last value,
// and an alias used as a key (*slot) was read as the anchor's name instead
// of the key it stands for.
func TestParseFileRejectsAmbiguousKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app: shop\nslot: staging\napp: shop2\n", "line 3: app is set twice (first on line 1)"},
		{"&slot app: shop\n*slot : other\n", "line 2: a setting name must be a plain word"},
		{"? [app]\n: x\n", "line 1: a setting name must be a plain word"},
		{"!!binary c2xvdA==: staging\n", "line 1: a setting name must be a plain word"},
		{"app: !!binary 0\n", "line 1: app: tagged values (!!binary) are not accepted"},
		{"domain: [!!binary aGVsbG8=]\n", "list items must be plain values"},
	} {
		_, err := ParseFile("djdeploy.yaml", []byte(tc.in))
		p, ok := problem.As(err)
		if !ok || !p.Usage || !strings.Contains(p.What, tc.want) {
			t.Errorf("ParseFile(%q) = %v, want a usage error containing %q", tc.in, err, tc.want)
		}
	}
	// Quoted and explicitly tagged string keys are still plain names.
	got, err := ParseFile("djdeploy.yaml", []byte("\"app\": shop\n!!str slot: !!str staging\n"))
	if err != nil || got["app"] != "shop" || got["slot"] != "staging" {
		t.Errorf("quoted/tagged string keys: got %v, %v", got, err)
	}
}
