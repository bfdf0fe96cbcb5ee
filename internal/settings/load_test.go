package settings

import (
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// lock-timeout, whose range starts at 0s: a zero deploy-timeout is out of
// range (TestRanges).
func TestDurationNeedsAUnit(t *testing.T) {
	for _, c := range []struct {
		raw     string
		want    time.Duration
		wantErr string // part of the message; fix checked separately
		wantFix string
	}{
		{raw: "90s", want: 90 * time.Second},
		{raw: "1h30m", want: 90 * time.Minute},
		{raw: "0", want: 0},
		{raw: "30", wantErr: `"30" has no unit`, wantFix: "30s for seconds, 30m for minutes"},
		{raw: "1.5", wantErr: `"1.5" has no unit`, wantFix: "1.5s"},
		{raw: "ten", wantErr: `"ten" is not a duration`, wantFix: "90s, 10m"},
	} {
		t.Run(c.raw, func(t *testing.T) {
			env := map[string]string{"DJDEPLOY_LOCK_TIMEOUT": c.raw}
			v, err := Load(nil, func(k string) string { return env[k] }, "", false)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := v.Duration("lock-timeout"); got != c.want {
					t.Fatalf("lock-timeout = %v, want %v", got, c.want)
				}
				return
			}
			p, ok := problem.As(err)
			if !ok || !p.Usage {
				t.Fatalf("want a usage problem, got %v", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "DJDEPLOY_LOCK_TIMEOUT") {
				t.Errorf("message %q does not say %q and name the variable", err, c.wantErr)
			}
			if !strings.Contains(p.Fix, c.wantFix) {
				t.Errorf("fix %q does not say %q", p.Fix, c.wantFix)
			}
		})
	}
}
