package github

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-githubactions"
)

// Reporter is the progress.Reporter of a GitHub Actions step: lines in the
// log, warnings as annotations, one ::group:: per step, and masks.
type Reporter struct {
	gha      *githubactions.Action
	Interval time.Duration

	mu      sync.Mutex
	grouped bool
	masked  map[string]bool
	last    map[string]time.Time
}

// NewReporter reports through gha.
func NewReporter(gha *githubactions.Action) *Reporter {
	return &Reporter{gha: gha, Interval: 5 * time.Second, masked: map[string]bool{}, last: map[string]time.Time{}}
}

// Mask hides a secret in every later line of the log. A multi-line secret
// (a PEM key) is also masked line by line, as the runner matches lines.
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
			// Short lines (a PEM's padding) would mask common text.
			if l = strings.TrimSpace(l); len(l) >= 8 {
				vals = append(vals, l)
			}
		}
	}
	for _, v := range vals {
		if !r.masked[v] {
			r.masked[v] = true
			r.gha.AddMask(v)
		}
	}
}

// Infof prints a log line.
func (r *Reporter) Infof(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gha.Infof("%s", neutralize(fmt.Sprintf(format, args...)))
}

// Warnf prints a warning annotation.
func (r *Reporter) Warnf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gha.Warningf("%s", fmt.Sprintf(format, args...))
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
		r.gha.Infof("  %s: %d/%d (%d%%)", neutralize(what), done, total, done*100/total)
	} else {
		r.gha.Infof("  %s: %d", neutralize(what), done)
	}
}

// StartGroup opens a log group for a step, closing the previous one (the
// runner does not nest groups).
func (r *Reporter) StartGroup(title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.gha.EndGroup()
	}
	r.gha.Group(neutralize(title))
	r.grouped = true
}

// EndGroup closes the open group, if any.
func (r *Reporter) EndGroup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.gha.EndGroup()
		r.grouped = false
	}
}

// neutralize keeps text from the user's project (file names, command output)
// from being read as a workflow command: the runner acts on lines that start
// with "::".
func neutralize(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, " \t"), "::") {
			lines[i] = strings.Replace(l, "::", ":\u200b:", 1)
		}
	}
	return strings.Join(lines, "\n")
}
