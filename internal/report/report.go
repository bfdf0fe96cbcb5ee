// Package report holds the result of a release as plain values, filled by the
// release command and rendered by the CI front ends: a Markdown summary (with
// a Mermaid timeline where the CI renders it) and the action's outputs.
//
// It imports only progress (a leaf, for HumanBytes), so the release command, the CLI and both CI
// adapters can share it without reaching into each other.
package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/progress"
)

// Outcomes of a release.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Planned   = "planned" // --plan: nothing was changed
)

// Step statuses.
const (
	StepDone    = "done"
	StepSkipped = "skipped"
	StepFailed  = "failed"
	StepNotRun  = "not-run"
)

// Release is what one release (or one of its parts) did.
type Release struct {
	ReleaseID string `json:"release_id"`
	App       string `json:"app"`
	Slot      string `json:"slot"`
	// URL is production's URL, SlotURL the staging slot's (the preview),
	// StaticURL where the static files are served from.
	URL       string `json:"url"`
	SlotURL   string `json:"slot_url"`
	StaticURL string `json:"static_url"`
	// SlotRelease is the release the slot serves when the run ended, as far
	// as the run knows: ReleaseID after a deploy and warm-up (a preview),
	// the previously live release after a swap, "" when unknown. Only when
	// it is ReleaseID does SlotURL show this release (see Previewing).
	SlotRelease string `json:"slot_release"`
	// DeploymentID is Kudu's deployment id.
	DeploymentID string        `json:"deployment_id"`
	Started      time.Time     `json:"started"`
	Duration     time.Duration `json:"duration_ns"`
	Outcome      string        `json:"outcome"` // Succeeded, Failed or Planned
	FailedStep   string        `json:"failed_step,omitempty"`
	Error        string        `json:"error,omitempty"`
	Steps        []Step        `json:"steps"`

	// Live is set once production serves this release (its swap, in this
	// run or an earlier one, is done): a later failure leaves it live.
	Live bool `json:"live"`
	// ProductionFailureSeconds is how long production served this release
	// after a swap that was then swapped back (0 when none was).
	ProductionFailureSeconds float64 `json:"production_failure_seconds,omitempty"`

	StaticUploaded int   `json:"static_uploaded"`
	StaticSkipped  int   `json:"static_skipped"`
	StaticBytes    int64 `json:"static_bytes"`
	// StaticChanged are the URL paths below the container whose blobs were
	// uploaded or had their headers changed.
	StaticChanged []string `json:"static_changed"`
	PurgedPaths   []string `json:"purged_paths"`

	// Checks are Django's `check --deploy` findings.
	Checks []Check `json:"checks"`

	// Strategy is "canary" for a canary release ("" for a plain swap);
	// Gates are the traffic gates it (and a post-swap watch) judged.
	Strategy string `json:"strategy,omitempty"`
	Gates    []Gate `json:"gates,omitempty"`

	// Kind is "rollback" for `djdeploy rollback` ("" for a release); From
	// is then the release production ran before it.
	Kind string `json:"kind,omitempty"`
	From string `json:"from_release,omitempty"`
}

// Gate is one judged window of traffic: a canary step or a post-swap watch.
type Gate struct {
	Step     string        `json:"step"`              // canary or watch
	Percent  float64       `json:"percent,omitempty"` // the canary's share of new visitors
	Outcome  string        `json:"outcome"`           // pass, fail, not enough evidence
	Source   string        `json:"source"`            // application insights or probes
	Requests int           `json:"requests"`
	Failed   int           `json:"failed"`
	P95      time.Duration `json:"p95_ns"`
	Reason   string        `json:"reason"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
}

// Previewing reports whether SlotURL serves this run's release, so it may
// be shown as this release's preview. After a swap it serves the release
// that was live before, and saying otherwise would send reviewers to old
// code.
func (r *Release) Previewing() bool {
	return r.SlotURL != "" && r.ReleaseID != "" && r.SlotRelease == r.ReleaseID
}

// Step is one timed step of a release.
type Step struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"` // StepDone, StepSkipped, StepFailed or StepNotRun
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Detail   string        `json:"detail,omitempty"` // why it was skipped, what it did, or why it failed
}

// Check is one finding of Django's system checks.
type Check struct {
	ID      string `json:"id"`    // e.g. security.W004
	Level   string `json:"level"` // error, warning, info (Django's levels, lower-case)
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	File    string `json:"file,omitempty"` // the settings module's file, relative to the workspace, when known
}

// MarkdownOptions chooses what Markdown renders.
type MarkdownOptions struct {
	// Mermaid adds a gantt chart of the step timeline. GitHub renders
	// Mermaid in job summaries; Azure Pipelines' summary tab does not.
	Mermaid bool
}

// Markdown renders the report as a job summary.
func Markdown(r *Release, o MarkdownOptions) string {
	var b strings.Builder
	title := "djdeploy release"
	if r.Kind == "rollback" {
		title = "djdeploy rollback to"
	}
	if r.ReleaseID != "" {
		title += " " + code(r.ReleaseID)
	}
	fmt.Fprintf(&b, "## %s %s\n\n", outcomeIcon(r.Outcome), title)

	var facts [][2]string
	add := func(k, v string) {
		if v != "" {
			facts = append(facts, [2]string{k, v})
		}
	}
	add("Outcome", r.Outcome)
	if r.Kind == "rollback" {
		add("Rolled back from", code(r.From))
	}
	if r.App != "" {
		app := code(r.App)
		if r.Slot != "" {
			app += " (slot " + code(r.Slot) + ")"
		}
		add("App", app)
	}
	add("Production", link(r.URL))
	if r.Previewing() {
		add("Slot preview", link(r.SlotURL))
	} else if r.SlotURL != "" && r.SlotRelease != "" {
		add("Slot", link(r.SlotURL)+" (since the swap it serves "+code(r.SlotRelease)+", the release live before)")
	}
	add("Static files", link(r.StaticURL))
	add("Deployment", code(r.DeploymentID))
	if r.Duration > 0 {
		add("Duration", FormatDuration(r.Duration))
	}
	if r.StaticUploaded+r.StaticSkipped > 0 || r.StaticBytes > 0 {
		add("Static files uploaded", fmt.Sprintf("%d (%s), %d unchanged", r.StaticUploaded, progress.HumanBytes(r.StaticBytes), r.StaticSkipped))
	}
	if len(facts) > 0 {
		b.WriteString("| | |\n|---|---|\n")
		for _, f := range facts {
			fmt.Fprintf(&b, "| %s | %s |\n", f[0], cell(f[1]))
		}
		b.WriteString("\n")
	}

	if r.Outcome == Failed {
		msg := "The release failed"
		if r.FailedStep != "" {
			msg += " at step " + code(r.FailedStep)
		}
		if r.Live {
			msg += "; production already serves this release, with all of its static files: re-run it to finish the remaining steps."
		} else {
			msg += "; production still serves the previous release."
		}
		fmt.Fprintf(&b, "> [!CAUTION]\n> %s\n", msg)
		if r.Error != "" {
			fmt.Fprintf(&b, "> %s\n", oneLine(r.Error))
		}
		b.WriteString("\n")
	}

	if len(r.Steps) > 0 {
		b.WriteString("### Steps\n\n| Step | Status | Duration | Detail |\n|---|---|---:|---|\n")
		for _, s := range r.Steps {
			d := ""
			if s.Status == StepDone || s.Status == StepFailed {
				d = FormatDuration(s.Duration)
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s | %s |\n", cell(s.Name), statusIcon(s.Status), s.Status, d, cell(s.Detail))
		}
		b.WriteString("\n")
	}

	if len(r.Gates) > 0 {
		b.WriteString("### Traffic gates\n\n| Step | Share | Verdict | Requests | Failed | p95 | From |\n|---|---:|---|---:|---:|---:|---|\n")
		for _, g := range r.Gates {
			share := ""
			if g.Percent > 0 {
				share = strconv.FormatFloat(g.Percent, 'g', -1, 64) + "%"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s |\n", cell(g.Step), share, cell(g.Outcome), g.Requests, g.Failed, FormatDuration(g.P95), cell(g.Source))
		}
		b.WriteString("\n")
	}

	if o.Mermaid {
		if g := gantt(r); g != "" {
			b.WriteString("### Timeline\n\n")
			b.WriteString(g)
			b.WriteString("\n")
		}
	}

	if len(r.PurgedPaths) > 0 {
		fmt.Fprintf(&b, "### Purged paths (%d)\n\n", len(r.PurgedPaths))
		const show = 50
		for i, p := range r.PurgedPaths {
			if i == show {
				fmt.Fprintf(&b, "- … and %d more\n", len(r.PurgedPaths)-show)
				break
			}
			fmt.Fprintf(&b, "- %s\n", code(p))
		}
		b.WriteString("\n")
	}

	if len(r.Checks) > 0 {
		b.WriteString("### Django deployment checks\n\n| Check | Level | Message | Hint |\n|---|---|---|---|\n")
		for _, c := range r.Checks {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(c.ID), c.Level, cell(c.Message), cell(c.Hint))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// gantt is a Mermaid chart of the steps that ran. Mermaid's gantt needs
// absolute times; it gets them as milliseconds since the release started
// (dateFormat x), so the chart is the same whatever the clock said.
func gantt(r *Release) string {
	var lines []string
	for i, s := range r.Steps {
		if s.Status != StepDone && s.Status != StepFailed {
			continue
		}
		start := s.Started.Sub(r.Started).Milliseconds()
		if r.Started.IsZero() || s.Started.IsZero() || start < 0 {
			start = 0
		}
		// Mermaid draws nothing for a zero-length task.
		ms := max(s.Duration.Milliseconds(), 1)
		tag := ""
		if s.Status == StepFailed {
			tag = "crit, "
		}
		lines = append(lines, fmt.Sprintf("    %s %s :%ss%d, %d, %dms", mermaidText(s.Name), FormatDuration(s.Duration), tag, i, start, ms))
	}
	if len(lines) == 0 {
		return ""
	}
	return "```mermaid\ngantt\n    dateFormat x\n    axisFormat %M:%S\n    section release\n" + strings.Join(lines, "\n") + "\n```\n"
}

// Outputs are the GitHub Action's outputs (also the Azure Pipelines output
// variables). Every key is always present, empty when it does not apply, so
// workflows can reference any of them.
func Outputs(r *Release) map[string]string {
	purged := append([]string(nil), r.PurgedPaths...)
	sort.Strings(purged)
	dur := ""
	if r.Duration > 0 {
		dur = strconv.FormatFloat(r.Duration.Seconds(), 'f', 1, 64)
	}
	slotURL := ""
	if r.Previewing() {
		slotURL = r.SlotURL
	}
	return map[string]string{
		"url":             r.URL,
		"slot-url":        slotURL,
		"release-id":      r.ReleaseID,
		"static-uploaded": strconv.Itoa(r.StaticUploaded),
		"static-skipped":  strconv.Itoa(r.StaticSkipped),
		"purged-paths":    strings.Join(purged, "\n"),
		"deployment-id":   r.DeploymentID,
		"duration":        dur,
		"outcome":         r.Outcome,
	}
}

// OutputDescriptions describes each output, for action.yml.
var OutputDescriptions = []struct{ Name, Description string }{
	{"url", "production URL of the app"},
	{"slot-url", "URL of the slot that serves this release (a preview, or a release stopped before its swap); empty once a swap moved the release to production"},
	{"release-id", "id of the release (names the static files' manifest and the build tag)"},
	{"static-uploaded", "number of static files uploaded"},
	{"static-skipped", "number of static files already up to date"},
	{"purged-paths", "CDN paths purged, one per line"},
	{"deployment-id", "Kudu deployment id"},
	{"duration", "duration of the run in seconds"},
	{"outcome", "succeeded, failed or planned"},
}

// FormatDuration prints a duration for people: 850ms, 12.3s, 2m05s.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func outcomeIcon(o string) string {
	switch o {
	case Succeeded:
		return "✅"
	case Failed:
		return "❌"
	case Planned:
		return "📝"
	}
	return "ℹ️"
}

func statusIcon(s string) string {
	switch s {
	case StepDone:
		return "✅"
	case StepFailed:
		return "❌"
	case StepSkipped:
		return "⏭️"
	}
	return "⏸️"
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

func link(u string) string {
	if u == "" {
		return ""
	}
	return "<" + u + ">"
}

// cell keeps a value inside one Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", `\|`)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// mermaidText drops the characters Mermaid's gantt syntax gives meaning to.
func mermaidText(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ':', '#', ';', '\n', '\r':
			return ' '
		}
		return r
	}, s)
}
