package redact

import (
	"strings"
	"testing"
)

func TestSAS(t *testing.T) {
	const sig = "kP3%2Bq0r%2Fz9ZQ1xYv2wQ%3D"
	for _, tc := range []struct{ in, want string }{
		{"https://acct.blob.core.windows.net/?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig=" + sig,
			"https://acct.blob.core.windows.net/?sv=REDACTED&ss=REDACTED&srt=REDACTED&sp=REDACTED&se=REDACTED&st=REDACTED&spr=REDACTED&sig=REDACTED"},
		{`blob-endpoint "http://storage.example.com/?sv=2022&SIG=abc" uses plain http`, `blob-endpoint "http://storage.example.com/?sv=REDACTED&SIG=REDACTED" uses plain http`},
		{"BlobEndpoint=https://a/;SharedAccessSignature=sv=2022&sig=abc", "BlobEndpoint=https://a/;SharedAccessSignature=sv=REDACTED&sig=REDACTED"},
		{"https://example.com/page?q=search&page=2", "https://example.com/page?q=search&page=2"},
		{"no url here", "no url here"},
	} {
		if got := SAS(tc.in); got != tc.want {
			t.Errorf("SAS(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
	u := "https://acct.blob.core.windows.net/?sv=2022&sig=" + sig
	got := SASSecrets(u)
	if len(got) != 4 || got[0] != u || got[2] != sig || !strings.Contains(got[3], "+") {
		t.Errorf("SASSecrets = %q", got)
	}
	if SASSecrets("https://acct.blob.core.windows.net/") != nil || HasSAS("https://x/?q=1") {
		t.Error("a URL without a SAS counted as secret")
	}
}

func TestMaskable(t *testing.T) {
	env := map[string]string{
		"SECRET_KEY":             "django-insecure-abcdefgh",
		"DATABASE_URL":           "postgres://app:hunter22@db.example.com/app",
		"STATIC_URL":             "https://cdn.example.net/static/",
		"DEBUG":                  "false",
		"DJANGO_SETTINGS_MODULE": "mysite.settings",
		"SAS_URL":                "https://a.blob.core.windows.net/?sig=x",
		"ALLOWED_HOSTS":          "demo-app.azurewebsites.net,.example.com",
		"CSRF_TRUSTED_ORIGINS":   "https://demo-app.azurewebsites.net https://www.example.com",
		"SETTINGS":               "mysite.settings.production",
		"JWT":                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
		"API_KEY":                "sk-live.abcdefgh1234",
	}
	got := strings.Join(Maskable(env), "\n")
	for _, want := range []string{"django-insecure-abcdefgh", "postgres://app:hunter22@db.example.com/app", "https://a.blob.core.windows.net/?sig=x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl", "sk-live.abcdefgh1234"} {
		if !strings.Contains(got, want) {
			t.Errorf("Maskable misses %q", want)
		}
	}
	for _, not := range []string{"https://cdn.example.net/static/", "false", "mysite.settings", "demo-app.azurewebsites.net,.example.com", "https://demo-app.azurewebsites.net https://www.example.com", "mysite.settings.production"} {
		if strings.Contains(got, not) {
			t.Errorf("Maskable picks %q", not)
		}
	}
	if s := Values("key=django-insecure-abcdefgh!", Maskable(env)); s != "key=***!" {
		t.Errorf("Values: %q", s)
	}
}
