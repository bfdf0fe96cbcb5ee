package report

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update || os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s (run with UPDATE_GOLDEN=1 to create it): %v", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendering (UPDATE_GOLDEN=1 rewrites it after review)\n--- got:\n%s", path, got)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sample() *Release {
	return &Release{
		ReleaseID: "20250301-120000-abc1234", App: "shop", Slot: "staging",
		URL: "https://shop.azurewebsites.net", SlotURL: "https://shop-staging.azurewebsites.net",
		SlotRelease: "20250228-090000-9f8e7d6", // swapped: the slot serves the previous release
		StaticURL:   "https://shop.azurefd.net/static/", DeploymentID: "d41d8cd9",
		Started: t0, Duration: 95*time.Second + 400*time.Millisecond, Outcome: Succeeded,
		Steps: []Step{
			{Name: "build", Status: StepDone, Started: t0, Duration: 12300 * time.Millisecond, Detail: "412 files, 3.1 MiB"},
			{Name: "static sync", Status: StepDone, Started: t0.Add(12300 * time.Millisecond), Duration: 4 * time.Second, Detail: "7 uploaded | 405 unchanged"},
			{Name: "deploy", Status: StepDone, Started: t0.Add(16300 * time.Millisecond), Duration: 61 * time.Second},
			{Name: "swap", Status: StepDone, Started: t0.Add(77300 * time.Millisecond), Duration: 18 * time.Second},
			{Name: "purge", Status: StepSkipped, Detail: "no CDN configured"},
		},
		StaticUploaded: 7, StaticSkipped: 405, StaticBytes: 181234,
		PurgedPaths: []string{"/static/css/site.css", "/static/admin/js/core.js"},
		Checks:      []Check{{ID: "security.W004", Level: "warning", Message: "You have not set SECURE_HSTS_SECONDS.", Hint: "", File: "shop/settings.py"}},
	}
}

func failed() *Release {
	r := sample()
	r.Outcome, r.FailedStep, r.Error = Failed, "swap", "warm-up: slot answered 502 for 5m0s\nlast body: Bad Gateway"
	r.Steps[3].Status = StepFailed
	r.Steps[4] = Step{Name: "purge", Status: StepNotRun}
	r.PurgedPaths, r.Checks = nil, nil
	r.SlotRelease = r.ReleaseID // the failed swap was undone: the slot serves this release again
	return r
}

func canaryAborted() *Release {
	r := failed()
	r.Strategy, r.FailedStep, r.Error = "canary", "canary", "canary at 25%: failure rate 12.0% is over the 1.0% allowed"
	r.Gates = []Gate{
		{Step: "canary", Percent: 5, Outcome: "pass", Source: "application insights", Requests: 240, Failed: 1, P95: 180 * time.Millisecond},
		{Step: "canary", Percent: 25, Outcome: "fail", Source: "application insights", Requests: 1210, Failed: 145, P95: 2100 * time.Millisecond},
	}
	return r
}

// rollback is a rollback's report: the title and a fact say so.
func rollback() *Release {
	r := sample()
	r.Kind, r.From = "rollback", "9f8e7d6c5b4a3210"
	return r
}

func TestGoldenMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       *Release
		mermaid bool
	}{
		{"succeeded-github", sample(), true},
		{"succeeded-azdo", sample(), false},
		{"failed-github", failed(), true},
		{"empty", &Release{Outcome: Planned}, true},
		{"canary-aborted", canaryAborted(), false},
		{"rollback", rollback(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, "markdown-"+tc.name, Markdown(tc.r, MarkdownOptions{Mermaid: tc.mermaid}))
		})
	}
}

func TestMarkdownMermaidOnlyWhenAsked(t *testing.T) {
	with := Markdown(sample(), MarkdownOptions{Mermaid: true})
	without := Markdown(sample(), MarkdownOptions{})
	if !strings.Contains(with, "```mermaid\ngantt") {
		t.Errorf("no gantt chart with Mermaid on:\n%s", with)
	}
	if strings.Contains(without, "mermaid") {
		t.Errorf("gantt chart rendered with Mermaid off:\n%s", without)
	}
}

func TestMarkdownKeepsTableCellsIntact(t *testing.T) {
	md := Markdown(failed(), MarkdownOptions{})
	if !strings.Contains(md, `7 uploaded \| 405 unchanged`) {
		t.Errorf("pipe in a cell not escaped:\n%s", md)
	}
	if strings.Contains(md, "502 for 5m0s\nlast") {
		t.Errorf("multi-line error breaks the callout:\n%s", md)
	}
}

func TestOutputs(t *testing.T) {
	got := Outputs(sample())
	want := map[string]string{
		"url": "https://shop.azurewebsites.net", "slot-url": "", // after the swap the slot serves the old release
		"release-id": "20250301-120000-abc1234", "static-uploaded": "7", "static-skipped": "405",
		"purged-paths": "/static/admin/js/core.js\n/static/css/site.css", "deployment-id": "d41d8cd9",
		"duration": "95.4", "outcome": "succeeded",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("output %s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("outputs %v, want exactly %v", got, want)
	}
	for _, d := range OutputDescriptions {
		if _, ok := got[d.Name]; !ok {
			t.Errorf("output %s is described for action.yml but never set", d.Name)
		}
	}
	if len(OutputDescriptions) != len(got) {
		t.Errorf("%d outputs set, %d described", len(got), len(OutputDescriptions))
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond: "850ms", 12340 * time.Millisecond: "12.3s", 125 * time.Second: "2m05s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// A release that fails after its swap (at purge or prune) must not claim
// production still serves the previous release: it serves this one.
func TestMarkdownFailureAfterSwap(t *testing.T) {
	r := failed()
	r.FailedStep, r.Error = "purge", "purge step: CDN answered 503"
	before := Markdown(r, MarkdownOptions{})
	r.Live = true
	after := Markdown(r, MarkdownOptions{})
	if !strings.Contains(before, "production still serves the previous release") {
		t.Errorf("failure before the swap:\n%s", before)
	}
	if strings.Contains(after, "previous release") || !strings.Contains(after, "production already serves this release") {
		t.Errorf("failure after the swap:\n%s", after)
	}
}

// The slot's URL is this release's preview only while the slot serves it:
// after a swap it serves the release that was live before (issue 13 item 1).
func TestPreviewingOnlyWhileTheSlotServesTheRelease(t *testing.T) {
	for _, c := range []struct {
		name        string
		slotRelease string
		want        bool
	}{
		{"deployed and warmed up, not swapped", "20250301-120000-abc1234", true},
		{"swapped: the previous release is on the slot", "20250228-090000-9f8e7d6", false},
		{"unknown", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sample()
			r.SlotRelease = c.slotRelease
			if got := r.Previewing(); got != c.want {
				t.Errorf("Previewing() = %v, want %v", got, c.want)
			}
			out := Outputs(r)["slot-url"]
			md := Markdown(r, MarkdownOptions{})
			if c.want {
				if out != r.SlotURL || !strings.Contains(md, "Slot preview") {
					t.Errorf("slot-url %q, summary:\n%s", out, md)
				}
			} else if out != "" || strings.Contains(md, "Slot preview") {
				t.Errorf("claims a preview of the slot: slot-url %q, summary:\n%s", out, md)
			}
		})
	}
}
