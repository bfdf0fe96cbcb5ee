package harness

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// TestCommandParts runs the action's command values other than release
// through the GitHub runner, against the emulator: build sets release-id
// (the id in the release.json it wrote), static uploads the build's
// static/ (no source input was needed before: it always failed), deploy,
// swap and purge bring the build to production in parts, and doctor is
// accepted (it was refused although its inputs are declared).
func TestCommandParts(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	ws := e2e.Project(t, "workspace")
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, built by command: build")
	out := filepath.Join(t.TempDir(), "out")
	base := releaseSettings(s)
	base["credential"] = "access-token"
	base["access-token"] = s.emu.Token()
	base["github-deployment"] = "false"

	in := map[string]string{}
	for k, v := range base {
		in[k] = v
	}
	in["command"], in["out"] = "build", out
	r := githubStep(t, s, gh, ws, in, nil)
	if r.Code != 0 {
		t.Fatalf("command: build: %s", r)
	}
	var m struct {
		ReleaseID string `json:"release_id"`
	}
	b, err := os.ReadFile(filepath.Join(out, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.ReleaseID == "" || r.outputs["release-id"] != m.ReleaseID || r.outputs["outcome"] != "succeeded" {
		t.Errorf("command: build outputs %v; release.json names %q", r.outputs, m.ReleaseID)
	}

	in["command"] = "static"
	r = githubStep(t, s, gh, ws, in, nil)
	if r.Code != 0 || r.outputs["outcome"] != "succeeded" {
		t.Errorf("command: static with the build's out folder: %s\noutputs %v", r, r.outputs)
	}
	delete(in, "out")
	r = githubStep(t, s, gh, ws, in, nil)
	if r.Code != 2 || r.outputs["outcome"] != "failed" {
		t.Errorf("command: static with no static files to upload: want exit 2 and outcome failed: %s", r)
	}

	// deploy the build's zip to the slot, swap it in, purge a path: each
	// part on its own, as a workflow splitting the release into jobs does.
	for _, part := range []map[string]string{
		{"command": "deploy", "package": filepath.Join(out, "app.zip")},
		{"command": "swap"},
		{"command": "purge", "path": "/static/*"},
	} {
		in = map[string]string{}
		for k, v := range base {
			in[k] = v
		}
		for k, v := range part {
			in[k] = v
		}
		r = githubStep(t, s, gh, ws, in, nil)
		if r.Code != 0 || r.outputs["outcome"] != "succeeded" {
			t.Errorf("command: %s: %s\noutputs %v", part["command"], r, r.outputs)
		}
	}
	// The page, not the release id: command: deploy does not set
	// DJDEPLOY_RELEASE_ID on the slot (only release does).
	if _, _, body, err := e2e.Get(&http.Client{Timeout: 30 * time.Second}, s.emu.ProductionURL(app)+"/"); err != nil || !strings.Contains(body, "Hello, built by command: build") {
		t.Errorf("after command: deploy and command: swap production does not serve the build (%v):\n%s", err, body)
	}

	in = map[string]string{}
	for k, v := range base {
		in[k] = v
	}
	in["command"] = "doctor"
	r = githubStep(t, s, gh, ws, in, nil)
	if r.Code == 2 || r.outputs["outcome"] == "" {
		t.Errorf("command: doctor is refused or reports no outcome: %s\noutputs %v", r, r.outputs)
	}
}
