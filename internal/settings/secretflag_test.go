package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/spf13/pflag"
)

// TestSecretFlags: --access-token and --storage-connection-string put the
// secret where `ps` shows it to every local user. The value flag is refused
// (naming the environment variable, never repeating the value); the secret
// can come from the environment or a --NAME-file (- reads stdin), as gh's
// --with-token does.
func TestSecretFlags(t *testing.T) {
	var secrets []Setting
	for _, s := range All() {
		if s.Secret {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) < 2 {
		t.Fatalf("only %d secret settings declared", len(secrets))
	}
	const value = "s3cr3t-value-from-argv"
	for _, s := range secrets {
		t.Run(s.Name, func(t *testing.T) {
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			BindFlags(fs, []Setting{s})
			if err := fs.Parse([]string{"--" + s.Name, value}); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWithStdin(fs, func(string) string { return "" }, nil, "", false)
			p, ok := problem.As(err)
			if !ok || !p.Usage || !strings.Contains(p.Fix, s.EnvName()) || !strings.Contains(p.Fix, "--"+s.Name+"-file") {
				t.Fatalf("--%s on the command line: %v (fix %q), want exit 2 pointing at %s", s.Name, err, p.Fix, s.EnvName())
			}
			if strings.Contains(err.Error()+p.Fix, value) {
				t.Fatalf("the refusal repeats the secret: %v", err)
			}

			file := filepath.Join(t.TempDir(), "secret")
			os.WriteFile(file, []byte(value+"\n"), 0o600)
			for _, arg := range []string{file, "-"} {
				fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
				BindFlags(fs, []Setting{s})
				if err := fs.Parse([]string{"--" + s.Name + "-file", arg}); err != nil {
					t.Fatal(err)
				}
				v, err := LoadWithStdin(fs, func(string) string { return "" }, strings.NewReader(value+"\n"), "", false)
				if err != nil {
					t.Fatalf("--%s-file %s: %v", s.Name, arg, err)
				}
				if got := v.String(s.Name); got != value {
					t.Fatalf("--%s-file %s gave %q", s.Name, arg, got)
				}
			}
		})
	}
}

// TestBlobEndpointSAS: a blob endpoint carrying a SAS is a credential. It
// was accepted from djdeploy.yaml and never masked; it is now refused in the
// file (without repeating it) and its URL, query and signature are among
// the values masked, while a plain endpoint stays an ordinary setting.
func TestBlobEndpointSAS(t *testing.T) {
	const sig = "c2lnbmF0dXJlLXZhbHVl%2Bx%3D"
	u := "https://acct.blob.core.windows.net/?sv=2022-11-02&sp=rwl&se=2031-01-01&sig=" + sig
	_, err := ParseFile("djdeploy.yaml", []byte("blob-endpoint: "+u+"\n"))
	p, ok := problem.As(err)
	if !ok || !p.Usage || !strings.Contains(p.What, "SAS") || !strings.Contains(p.Fix, "DJDEPLOY_BLOB_ENDPOINT") || strings.Contains(err.Error(), sig) {
		t.Fatalf("SAS endpoint in the file: %v", err)
	}
	if _, err := ParseFile("djdeploy.yaml", []byte("blob-endpoint: https://acct.blob.core.windows.net/\n")); err != nil {
		t.Fatalf("a plain endpoint in the file: %v", err)
	}
	v, err := Load(nil, func(k string) string {
		if k == "DJDEPLOY_BLOB_ENDPOINT" {
			return u
		}
		return ""
	}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(v.Secrets(), "\n")
	for _, want := range []string{u, sig, "c2lnbmF0dXJlLXZhbHVl+x="} {
		if !strings.Contains(got, want) {
			t.Errorf("Secrets() lacks %q: %q", want, got)
		}
	}
}

// TestBlobEndpointSASFlag: a SAS in --blob-endpoint is a secret on the
// command line like any other; a plain endpoint flag stays fine.
func TestBlobEndpointSASFlag(t *testing.T) {
	s, _ := Lookup("blob-endpoint")
	for raw, refused := range map[string]bool{
		"https://acct.blob.core.windows.net/?sv=2022&sig=c2lnbmF0dXJl": true,
		"https://acct.blob.core.windows.net/":                          false,
	} {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		BindFlags(fs, []Setting{s})
		if err := fs.Parse([]string{"--blob-endpoint", raw}); err != nil {
			t.Fatal(err)
		}
		_, err := LoadWithStdin(fs, func(string) string { return "" }, nil, "", false)
		p, ok := problem.As(err)
		switch {
		case refused && (!ok || !p.Usage || !strings.Contains(p.Fix, "DJDEPLOY_BLOB_ENDPOINT") || strings.Contains(err.Error(), "c2lnbmF0dXJl")):
			t.Errorf("--blob-endpoint with a SAS: %v", err)
		case !refused && err != nil:
			t.Errorf("--blob-endpoint without a SAS: %v", err)
		}
	}
}
