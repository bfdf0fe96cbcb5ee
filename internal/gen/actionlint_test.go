package gen

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// lintTargets are the workflows make lint checks: this repository's own and
// the example users copy. ci.yml uses the action through `uses: ./`, which
// is how actionlint checks action.yml (inputs, outputs, runs).
func lintTargets(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "examples", "github-workflow.yml"))
	return files
}

func lint(t *testing.T, files []string) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatalf("actionlint: %v", err)
	}
	return errs
}

func TestActionlintWorkflows(t *testing.T) {
	files := lintTargets(t)
	usesSelf := false
	for _, f := range files {
		if b, err := readFile(f); err == nil && strings.Contains(b, "uses: ./\n") {
			usesSelf = true
		}
	}
	if !usesSelf {
		t.Errorf("no workflow uses the action as `uses: ./`, so actionlint never checks action.yml")
	}
	for _, e := range lint(t, files) {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// The check must be able to fail: an undeclared input and output of the
// action itself are caught through action.yml.
func TestActionlintRejectsBadWorkflow(t *testing.T) {
	errs := lint(t, []string{filepath.Join("testdata", "bad-workflow.yml")})
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`input "resource-grup" is not defined`, `property "release_id" is not defined`} {
		if !strings.Contains(all, want) {
			t.Errorf("actionlint did not report %q; it said:\n%s", want, all)
		}
	}
}
