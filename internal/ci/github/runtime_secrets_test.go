package github

import (
	"strings"
	"testing"
)

// TestCredentialSecretsMasked: the client secret (and certificate password)
// azidentity reads from the environment are masked before any other
// output, like the secret inputs.
func TestCredentialSecretsMasked(t *testing.T) {
	h := newHarness(t)
	h.env["AZURE_CLIENT_SECRET"] = "client-s3cr3t-value"
	h.env["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = "cert-pa55word-value"
	h.run(t, sampleRun)
	masked := map[string]bool{}
	for _, l := range strings.Split(h.stdout.String(), "\n") {
		v, ok := strings.CutPrefix(l, "::add-mask::")
		if !ok {
			break
		}
		masked[v] = true
	}
	for _, v := range []string{"client-s3cr3t-value", "cert-pa55word-value"} {
		if !masked[v] {
			t.Errorf("%s is not masked before other output:\n%s", v, h.stdout.String())
		}
	}
}
