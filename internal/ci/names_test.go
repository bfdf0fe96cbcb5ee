package ci

import (
	"regexp"
	"strings"
	"testing"
)

// runnerLines splits a log as the runners read it: on "\r", "\n" and "\r\n".
func runnerLines(s string) []string {
	return regexp.MustCompile(`\r\n|\r|\n`).Split(s, -1)
}

type captureLog struct{ b strings.Builder }

func (c *captureLog) Mask(string)        {}
func (c *captureLog) Info(l string)      { c.b.WriteString(l + "\n") }
func (c *captureLog) Warn(string)        {}
func (c *captureLog) Group(title string) { c.b.WriteString("::group::" + title + "\n") }
func (c *captureLog) EndGroup()          {}

// TestFileNamesCannotStartCommands: a file name with "\r" printed a line
// the runner read as a workflow command; each control character now shows
// as an escape, on the same line.
func TestFileNamesCannotStartCommands(t *testing.T) {
	log := &captureLog{}
	r := NewReporter(log)
	for _, name := range []string{"x\r::warning::forged.css", "y\r##vso[task.setvariable variable=A]1", "z\x1b[2Kbell\a.css"} {
		r.Infof("uploading %s", name)
		r.StartGroup("step " + name)
	}
	for _, l := range runnerLines(log.b.String()) {
		if strings.HasPrefix(l, "::warning") || strings.HasPrefix(l, "##vso") || strings.ContainsAny(l, "\x1b\a") {
			t.Errorf("a file name made its own log line or kept a control character: %q", l)
		}
	}
	if !strings.Contains(log.b.String(), `uploading x\r::warning::forged.css`) {
		t.Errorf("the name is not shown escaped:\n%s", log.b.String())
	}
}
