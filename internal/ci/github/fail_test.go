package github

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/sethvargo/go-githubactions"
)

// The annotation names the step a release failed at: the context wrapped
// around the user-facing error is kept, and the fix follows it.
func TestFailAnnotationNamesTheStep(t *testing.T) {
	var out bytes.Buffer
	gha := githubactions.New(githubactions.WithWriter(&out), githubactions.WithGetenv(func(string) string { return "" }))
	code := fail(gha, fmt.Errorf("deploy step: %w", problem.Failf("check the deployment log", "deployment 42 failed: BuildFailed")))
	got := out.String()
	if code != problem.ExitFailure {
		t.Fatalf("exit %d, want %d", code, problem.ExitFailure)
	}
	if !strings.HasPrefix(got, "::error ") || !strings.Contains(got, "deploy step: deployment 42 failed: BuildFailed") || !strings.Contains(got, "fix: check the deployment log") {
		t.Fatalf("annotation %q lacks the step, the cause or the fix", got)
	}
}
