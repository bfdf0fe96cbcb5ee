package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Throttle prints the first line of each kind of work and the last one,
// and nothing in between while the interval has not passed.
func TestThrottleKeepsFirstAndLast(t *testing.T) {
	th := Throttle{Interval: time.Hour}
	var got []string
	for i := int64(1); i <= 5; i++ {
		if line, ok := th.Line("files", i, 5); ok {
			got = append(got, line)
		}
	}
	if line, ok := th.Line("bytes", 0, 0); ok {
		got = append(got, line)
	}
	want := []string{"  files: 1/5 (20%)", "  files: 5/5 (100%)", "  bytes: 0"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestThrottleZeroIntervalPrintsEvery(t *testing.T) {
	var buf bytes.Buffer
	l := &Lines{W: &buf}
	for i := int64(1); i <= 3; i++ {
		l.Count("zip", i, 3)
	}
	if n := strings.Count(buf.String(), "zip:"); n != 3 {
		t.Fatalf("with no interval every count prints; got %d lines:\n%s", n, buf.String())
	}
}
