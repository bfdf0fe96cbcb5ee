package azdo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Reporter is the progress.Reporter of an Azure Pipelines script step:
// lines in the log, warnings as issues, one ##[group] per step, and secrets
// registered with task.setsecret.
type Reporter struct {
	w        io.Writer
	Interval time.Duration

	mu      sync.Mutex
	grouped bool
	masked  map[string]bool
	last    map[string]time.Time
}

// NewReporter writes to w (the step's stdout, which the agent parses).
func NewReporter(w io.Writer) *Reporter {
	return &Reporter{w: w, Interval: 5 * time.Second, masked: map[string]bool{}, last: map[string]time.Time{}}
}

func (r *Reporter) line(s string) { fmt.Fprintln(r.w, s) }

// Mask registers a secret so the agent hides it in every later line; a
// multi-line secret is also registered line by line.
func (r *Reporter) Mask(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return
	}
	vals := []string{secret}
	if strings.ContainsAny(secret, "\r\n") {
		for _, l := range strings.FieldsFunc(secret, func(c rune) bool { return c == '\n' || c == '\r' }) {
			if l = strings.TrimSpace(l); len(l) >= 8 {
				vals = append(vals, l)
			}
		}
	}
	for _, v := range vals {
		if !r.masked[v] {
			r.masked[v] = true
			r.line(Command("task.setsecret", nil, v))
		}
	}
}

// Infof prints a log line.
func (r *Reporter) Infof(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.line(neutralize(fmt.Sprintf(format, args...)))
}

// Warnf records a warning issue.
func (r *Reporter) Warnf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.line(Command("task.logissue", map[string]string{"type": "warning"}, fmt.Sprintf(format, args...)))
}

// Count prints progress at most every Interval, and at the end.
func (r *Reporter) Count(what string, done, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(r.last[what]) < r.Interval {
		return
	}
	r.last[what] = now
	if total > 0 {
		r.line(neutralize(fmt.Sprintf("  %s: %d/%d (%d%%)", what, done, total, done*100/total)))
	} else {
		r.line(neutralize(fmt.Sprintf("  %s: %d", what, done)))
	}
}

// StartGroup opens a collapsible group for a step, closing the previous one.
func (r *Reporter) StartGroup(title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.line("##[endgroup]")
	}
	r.line("##[group]" + strings.ReplaceAll(neutralize(title), "\n", " "))
	r.grouped = true
}

// EndGroup closes the open group, if any.
func (r *Reporter) EndGroup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.line("##[endgroup]")
		r.grouped = false
	}
}
