package ci

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/djdeploy/djdeploy/internal/report"
)

// Finish completes the report of a run that started at started and returned
// r and err, so that the outputs, the summary and the annotations still say
// what happened: no report becomes a failed one, and an error marks the
// report failed and is its error unless the run named a more precise one.
func Finish(r *report.Release, err error, started time.Time) *report.Release {
	if r == nil {
		r = &report.Release{Outcome: report.Failed, Started: started, Duration: time.Since(started)}
	}
	if err != nil {
		r.Outcome = report.Failed
		if r.Error == "" {
			r.Error = redact.SAS(err.Error())
		}
	}
	return r
}

// FailureMessage is what the step's error annotation or issue says about
// err: the error with the context wrapped around it (which names the step)
// and its fix, or, when the job was cancelled, that re-running resumes.
func FailureMessage(err error) string {
	msg, fix := err.Error(), ""
	if errors.Is(err, context.Canceled) {
		msg = "interrupted; nothing more was changed. Re-run the job to resume."
	} else if p, ok := problem.As(err); ok {
		// err, not p: the context wrapped around a problem names the step.
		msg, fix = err.Error(), p.Fix
	}
	if fix != "" {
		msg += "\nfix: " + fix
	}
	return redact.SAS(msg)
}

// PreviewMarker identifies djdeploy's preview comment (a thread in Azure
// Repos), so re-runs update it.
const PreviewMarker = "<!-- djdeploy:preview -->"

// PreviewComment is the pull request comment with the slot's preview URL.
// slotURL is r.SlotURL as the host's markdown should show it, and run a
// link to the run (see Link), or "".
func PreviewComment(r *report.Release, sha, slotURL, run string) string {
	var b strings.Builder
	b.WriteString(PreviewMarker + "\n")
	b.WriteString("### djdeploy preview\n\n")
	slot := r.Slot
	if slot == "" {
		slot = "staging"
	}
	fmt.Fprintf(&b, "Slot `%s` of `%s` serves this pull request", slot, r.App)
	if len(sha) >= 7 {
		fmt.Fprintf(&b, " at `%s`", sha[:7])
	}
	fmt.Fprintf(&b, ": %s\n\n", slotURL)
	var facts []string
	if r.ReleaseID != "" {
		facts = append(facts, "release `"+r.ReleaseID+"`")
	}
	if r.Outcome != "" {
		facts = append(facts, r.Outcome)
	}
	if run != "" {
		facts = append(facts, run)
	}
	if len(facts) > 0 {
		b.WriteString(strings.Join(facts, " · ") + "\n")
	}
	return b.String()
}

// Link is a markdown link, or "" without a URL.
func Link(text, url string) string {
	if url == "" {
		return ""
	}
	return "[" + text + "](" + url + ")"
}
