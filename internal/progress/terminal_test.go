package progress

import (
	"strings"
	"sync"
	"testing"
)

// The terminal reporter draws a spinner for a long step, a bar for counted
// work inside it, and prints lines whole above them; reporters are used
// from many goroutines at once (uploads), which -race checks here.
func TestTerminalDrawsAndPrintsLines(t *testing.T) {
	var screen syncBuffer
	term := NewTerminal(&screen)
	stop := Long(term, "building mysite")
	var wg sync.WaitGroup
	for i := int64(1); i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			term.Count("files", i, 20)
		}()
	}
	wg.Wait()
	term.Infof("collected 20 static files")
	term.Warnf("check --deploy W001")
	stop()
	stop()
	got := screen.String()
	for _, want := range []string{"\r", "building mysite", "files", "collected 20 static files\n", "warning: check --deploy W001\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, got)
		}
	}
	// each line starts on a cleared line: nothing of a bar before it
	for _, l := range strings.Split(got, "\n") {
		if i := strings.Index(l, "collected 20"); i >= 0 && strings.TrimLeft(l[:i], "\r ") != "" && !strings.HasSuffix(l[:i], "\r") {
			t.Errorf("a line was printed behind the bar: %q", l)
		}
	}
}
