package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// TestRenderErrorCutsLongLines: a message quoting a huge value (from a
// path that does not go through the settings' own limits) prints cut, and
// a SAS inside it redacted.
func TestRenderErrorCutsLongLines(t *testing.T) {
	var out bytes.Buffer
	huge := strings.Repeat("é", 100_000)
	renderError(&out, problem.Usagef("fix "+huge, "bad value at https://a.blob.core.windows.net/?sv=1&sig=c2VjcmV0: %q", huge))
	for _, l := range strings.Split(out.String(), "\n") {
		if len(l) > maxLine+64 {
			t.Errorf("a %d-byte line", len(l))
		}
	}
	if !strings.Contains(out.String(), "more bytes)") || strings.Contains(out.String(), "c2VjcmV0") || strings.ContainsRune(out.String(), '\uFFFD') {
		t.Errorf("output: %.300s", out.String())
	}
}
