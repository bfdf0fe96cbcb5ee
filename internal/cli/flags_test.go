package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// runCLI runs djdeploy in process with an empty environment.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// A mistyped flag gets the same "did you mean" a mistyped djdeploy.yaml key
// gets; a flag that moved names its new name; a flag that did nothing for a
// command is gone from it. Each is a usage error (exit 2) caught before any
// request: none of these runs has an Azure setting to reach.
func TestFlagMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"deploy", "--pacakge", "app.zip"}, "did you mean --package?"},
		{[]string{"swap", "--health-paht", "/healthz"}, "did you mean --health-path?"},
		{[]string{"release", "--static-kep=2"}, "did you mean --static-keep?"},
		{[]string{"emulator", "--config", "emu.yaml"}, "use --resources"},
		{[]string{"static", "prune", "--keep", "3"}, "use --static-keep"},
		{[]string{"static", "prune", "--grace", "1h"}, "use --static-grace"},
		// flags that changed nothing for these commands
		{[]string{"deploy", "--health-path", "/"}, "unknown flag: --health-path"},
		{[]string{"static", "sync", "--arm-endpoint", "https://x"}, "unknown flag: --arm-endpoint"},
		{[]string{"static", "sync", "--static-keep", "2"}, "unknown flag: --static-keep"},
		{[]string{"static", "mark-production", "--lock-timeout", "1m", "abc"}, "unknown flag: --lock-timeout"},
		{[]string{"version", "--config", "x.yaml"}, "unknown flag: --config"},
		{[]string{"preview", "--pr", "1", "--origin-rotation"}, "unknown flag: --origin-rotation"},
		{[]string{"static", "--json"}, "unknown flag: --json"},
		{[]string{"ci", "--json"}, "unknown flag: --json"},
		// durations need a unit
		{[]string{"deploy", "-g", "rg", "--app", "a", "--package", "p.zip", "--deploy-timeout", "30"}, `"30" has no unit`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != problem.ExitUsage {
				t.Errorf("exit %d, want %d", code, problem.ExitUsage)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not say %q", stderr, c.want)
			}
			if n := strings.Count(stderr, "error:"); n != 1 {
				t.Errorf("want one error line, got %d:\n%s", n, stderr)
			}
		})
	}
}
