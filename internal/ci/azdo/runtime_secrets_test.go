package azdo

import (
	"strings"
	"testing"
)

// TestCredentialSecretsRegistered: the client secret (and certificate
// password) azidentity reads from the environment are registered before any
// other output, like the secret settings: a pipeline may pass them as plain
// variables, which the agent does not mask by itself.
func TestCredentialSecretsRegistered(t *testing.T) {
	h := newHarness(t)
	h.env["AZURE_CLIENT_SECRET"] = "client-s3cr3t-value"
	h.env["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = "cert-pa55word-value"
	if code := h.run(t, sampleRun); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	lines := strings.Split(h.stdout.String(), "\n")
	masked := map[string]bool{}
	for _, l := range lines {
		v, ok := strings.CutPrefix(l, "##vso[task.setsecret]")
		if !ok {
			break
		}
		masked[v] = true
	}
	for _, v := range []string{"client-s3cr3t-value", "cert-pa55word-value"} {
		if !masked[v] {
			t.Errorf("%s is not registered before other output:\n%s", v, h.stdout.String())
		}
	}
}
