package cli

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// A problem wrapped in context (a release wraps each step's error as
// "<step> step: ...") must print with that context: the fault matrix found
// `error: uploading x.css: HTTP 503 ServerBusy` with no word of which
// release step failed.
func TestRenderErrorKeepsWrappedContext(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"bare problem", problem.Failf("retry later", "uploading a.css: HTTP 503 ServerBusy"),
			"error: uploading a.css: HTTP 503 ServerBusy\n  fix: retry later\n"},
		{"wrapped problem", fmt.Errorf("static-sync step: %w", problem.Failf("retry later", "uploading a.css: HTTP 503 ServerBusy")),
			"error: static-sync step: uploading a.css: HTTP 503 ServerBusy\n  fix: retry later\n"},
		{"plain error", fmt.Errorf("deploy step: %w", fmt.Errorf("boom")), "error: deploy step: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			renderError(&b, tt.err)
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}
