package actiontest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// TestEntrypointKeepsHyphenatedInputs runs the image's entrypoint script,
// with the binary it execs replaced by a bash script that prints the inputs
// (dash would drop the variable itself), the way the runner starts the
// container: inputs arrive as INPUT_<NAME> with
// hyphens kept. Under Debian's sh (dash) INPUT_FIX-SETTINGS never reached
// djdeploy, and every hyphenated input took its default on GitHub and act.
func TestEntrypointKeepsHyphenatedInputs(t *testing.T) {
	root := e2e.Root(t)
	b, err := os.ReadFile(filepath.Join(root, "entrypoint"))
	if err != nil {
		t.Fatal(err)
	}
	const bin = "/usr/local/bin/djdeploy"
	if !strings.Contains(string(b), bin) {
		t.Fatalf("entrypoint no longer execs %s; update this test", bin)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "djdeploy")
	if err := os.WriteFile(fake, []byte("#!/bin/bash\nexec printenv INPUT_FIX-SETTINGS INPUT_COMMAND\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "entrypoint")
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(string(b), bin, fake)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "INPUT_FIX-SETTINGS=true", "INPUT_COMMAND=release")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "true\nrelease\n" {
		t.Fatalf("the entrypoint passed on %q (%v); want INPUT_FIX-SETTINGS=true and INPUT_COMMAND=release to reach djdeploy", out, err)
	}
}
