// Package progress is the small interface through which domain packages
// report what they are doing, without knowing whether a terminal, a GitHub
// Actions log or an Azure Pipelines log is listening.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Reporter receives progress. Implementations must be safe for concurrent use.
type Reporter interface {
	// Infof reports one line of progress.
	Infof(format string, args ...any)
	// Warnf reports something the user should look at; it does not fail the run.
	Warnf(format string, args ...any)
	// Count reports that done of total units (files, bytes) of the named work
	// are finished. Implementations throttle their own output.
	Count(what string, done, total int64)
}

// Masker is a Reporter that can hide values in everything it prints later
// (a CI log registers them with the runner: ::add-mask::, task.setsecret).
type Masker interface {
	Mask(value string)
}

// Mask hides values in rep's later output when rep can (a CI reporter); a
// plain terminal reporter cannot, so callers also redact what they print.
func Mask(rep Reporter, values ...string) {
	if m, ok := rep.(Masker); ok {
		for _, v := range values {
			m.Mask(v)
		}
	}
}

// Discard drops everything.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Infof(string, ...any)       {}
func (discard) Warnf(string, ...any)       {}
func (discard) Count(string, int64, int64) {}

// Lines writes plain lines to w (stderr in the CLI): every Infof, every
// Warnf prefixed "warning:", and Count at most every Interval and at the end.
type Lines struct {
	W        io.Writer
	Interval time.Duration

	mu       sync.Mutex
	throttle Throttle
}

// NewLines returns a line reporter with a sensible interval for CI logs.
func NewLines(w io.Writer) *Lines { return &Lines{W: w, Interval: 2 * time.Second} }

func (l *Lines) Infof(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, format+"\n", args...)
}

func (l *Lines) Warnf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, "warning: "+format+"\n", args...)
}

func (l *Lines) Count(what string, done, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.throttle.Interval = l.Interval
	if line, ok := l.throttle.Line(what, done, total); ok {
		fmt.Fprintln(l.W, line)
	}
}

// Throttle decides which Count calls become a log line: at most one per
// Interval for each kind of work, and always the last (done == total), so
// a log of 50,000 uploads stays readable. It is not safe for concurrent
// use; reporters call it under their own lock.
type Throttle struct {
	Interval time.Duration
	last     map[string]time.Time
}

// Line returns the progress line for done of total, and whether to print it.
func (t *Throttle) Line(what string, done, total int64) (string, bool) {
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	now := time.Now()
	if done < total && now.Sub(t.last[what]) < t.Interval {
		return "", false
	}
	t.last[what] = now
	if total > 0 {
		return fmt.Sprintf("  %s: %d/%d (%d%%)", what, done, total, done*100/total), true
	}
	return fmt.Sprintf("  %s: %d", what, done), true
}

// Grouper is implemented by reporters that fold each step of a run into a
// section of the log: GitHub Actions' ::group::, Azure Pipelines' ##[group].
type Grouper interface {
	StartGroup(title string)
	EndGroup()
}

// Step marks the start of a step on r: a log group where r supports one, a
// heading line otherwise; while it runs it is a Long step (a bar on a
// terminal, a heartbeat in a log). Call the returned func when it ends.
func Step(r Reporter, title string) (end func()) {
	if g, ok := r.(Grouper); ok {
		g.StartGroup(title)
		stop := Long(r, title)
		return func() { stop(); g.EndGroup() }
	}
	r.Infof("== %s", title)
	return Long(r, title)
}

// HumanBytes writes a byte count for people: 512 B, 1.5 KiB, 20.3 MiB. Every
// progress line, report and summary uses it, so sizes read the same way
// everywhere.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
