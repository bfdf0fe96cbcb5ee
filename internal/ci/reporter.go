// Package ci holds what the CI adapters (internal/ci/github for GitHub
// Actions, internal/ci/azdo for Azure Pipelines) do alike: the reporter's
// masking, throttling and grouping, completing a run's report, the failure
// message and the pull request preview comment. Each adapter keeps its own
// log syntax and API calls.
package ci

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// Log is a CI log's own syntax. The adapter turns each call into its
// workflow or logging command and keeps text from the user's project from
// being read as one.
type Log interface {
	// Mask hides value in every later line of the log.
	Mask(value string)
	// Info prints a line of progress.
	Info(line string)
	// Warn records a warning (an annotation or an issue).
	Warn(msg string)
	// Group opens a collapsible group.
	Group(title string)
	// EndGroup closes the open group.
	EndGroup()
}

// Reporter is the progress.Reporter of a CI step: lines in the log,
// warnings as the CI's warnings, one group per step (the logs do not nest
// groups), and masks.
type Reporter struct {
	// Interval is the least time between two Count lines for one kind of
	// work; the last one (done == total) is always printed.
	Interval time.Duration

	log Log

	mu       sync.Mutex
	grouped  bool
	masked   map[string]bool
	throttle progress.Throttle
}

// NewReporter reports through log.
func NewReporter(log Log) *Reporter {
	return &Reporter{log: log, Interval: 5 * time.Second, masked: map[string]bool{}}
}

// Mask hides a secret in every later line of the log, once. A multi-line
// secret (a PEM key) is also masked line by line, as the CI matches lines.
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
			r.log.Mask(v)
		}
	}
}

// Infof prints a log line.
func (r *Reporter) Infof(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info(escapeControls(redact.SAS(fmt.Sprintf(format, args...))))
}

// Warnf records a warning.
func (r *Reporter) Warnf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Warn(redact.SAS(fmt.Sprintf(format, args...)))
}

// Count prints progress at most every Interval, and at the end.
func (r *Reporter) Count(what string, done, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttle.Interval = r.Interval
	if line, ok := r.throttle.Line(what, done, total); ok {
		r.log.Info(line)
	}
}

// StartGroup opens a group for a step, closing the previous one.
func (r *Reporter) StartGroup(title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.log.EndGroup()
	}
	r.log.Group(escapeControls(title))
	r.grouped = true
}

// EndGroup closes the open group, if any.
func (r *Reporter) EndGroup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped {
		r.log.EndGroup()
		r.grouped = false
	}
}

// escapeControls writes control characters from the user's project (a file
// name, a command's output) as visible escapes, line breaks aside (the
// adapters neutralize each line's start). A runner splits its log on "\r"
// as well as "\n": "x\r::warning::..." in a file name was a workflow
// command the adapters' line checks never saw.
func escapeControls(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r':
			b.WriteString(`\r`)
		case r != '\n' && r != '\t' && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
