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

func TestHumanBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}, {2 << 40, "2.0 TiB"},
	} {
		if got := HumanBytes(c.n); got != c.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
