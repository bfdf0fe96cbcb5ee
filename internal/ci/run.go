package ci

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
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

// PreviewDeletedComment replaces the preview comment once the pull
// request's slot is deleted, so the link it held does not lead nowhere.
func PreviewDeletedComment(r *report.Release, run string) string {
	var b strings.Builder
	b.WriteString(PreviewMarker + "\n")
	b.WriteString("### djdeploy preview\n\n")
	fmt.Fprintf(&b, "Slot `%s` of `%s` was deleted: the pull request is closed.\n", r.Slot, r.App)
	if run != "" {
		b.WriteString("\n" + run + "\n")
	}
	return b.String()
}

// PreviewPR fills the "pr" setting of a preview from the CI's own pull
// request number when the step did not give one, and reports whether the
// run is a preview. pr is 0 outside a pull request.
func PreviewPR(v *settings.Values, pr int) (bool, error) {
	if !strings.EqualFold(v.String("command"), "preview") {
		return false, nil
	}
	if v.String("pr") == "" && pr != 0 {
		if err := v.Set("pr", strconv.Itoa(pr), settings.FromEnv); err != nil {
			return true, err
		}
	}
	if v.String("pr") == "" {
		return true, problem.Usagef("run command preview on pull request events, or give the pr input",
			"command preview needs a pull request, and this run has none")
	}
	return true, nil
}

// Link is a markdown link, or "" without a URL.
func Link(text, url string) string {
	if url == "" {
		return ""
	}
	return "[" + text + "](" + url + ")"
}
