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

	mu   sync.Mutex
	last map[string]time.Time
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
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	now := time.Now()
	if done < total && now.Sub(l.last[what]) < l.Interval {
		return
	}
	l.last[what] = now
	if total > 0 {
		fmt.Fprintf(l.W, "  %s: %d/%d (%d%%)\n", what, done, total, done*100/total)
	} else {
		fmt.Fprintf(l.W, "  %s: %d\n", what, done)
	}
}

// Grouper is implemented by reporters that fold each step of a run into a
// section of the log: GitHub Actions' ::group::, Azure Pipelines' ##[group].
type Grouper interface {
	StartGroup(title string)
	EndGroup()
}

// Step marks the start of a step on r: a log group where r supports one, a
// heading line otherwise. Call the returned func when the step ends.
func Step(r Reporter, title string) (end func()) {
	if g, ok := r.(Grouper); ok {
		g.StartGroup(title)
		return g.EndGroup
	}
	r.Infof("== %s", title)
	return func() {}
}
