package gen

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestActionImageIsReleaseVersion: the committed action.yml runs the image
// the release of ReleaseVersion pushes, and the release workflow's guard
// (.ci/check-release-version.sh) passes for that tag and refuses any other,
// so a tag whose action.yml names another version never gets released.
func TestActionImageIsReleaseVersion(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Runs struct{ Using, Image string } `yaml:"runs"`
	}
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	want := "docker://ghcr.io/djdeploy/djdeploy:" + ReleaseVersion
	if a.Runs.Image != want {
		t.Errorf("action.yml runs %q, the release version %s pushes %q: run make generate", a.Runs.Image, ReleaseVersion, want)
	}

	major, rest, _ := strings.Cut(ReleaseVersion, ".")
	for _, tc := range []struct {
		tag, owner string
		ok         bool
		says       string
	}{
		{"v" + ReleaseVersion, "djdeploy", true, "names " + want},
		{"v" + ReleaseVersion, "DjDeploy", true, "names " + want}, // GHCR names are lower case
		{"v" + major + "9." + rest, "djdeploy", false, "set ReleaseVersion in internal/gen/version.go"},
		{"v" + ReleaseVersion, "someone-else", false, "ghcr.io/someone-else/djdeploy:" + ReleaseVersion},
		{"latest", "djdeploy", false, "not vMAJOR.MINOR.PATCH"},
	} {
		cmd := exec.Command("bash", filepath.Join(root, ".ci", "check-release-version.sh"), tc.tag, tc.owner)
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok || !strings.Contains(string(out), tc.says) {
			t.Errorf("check-release-version %s %s: err=%v, want ok=%v and %q in:\n%s", tc.tag, tc.owner, err, tc.ok, tc.says, out)
		}
	}
}

// TestReleaseWorkflow: the release workflow runs on version tags, checks
// the version before it pushes anything, builds both architectures, attests
// the pushed digest, and moves the major tag.
func TestReleaseWorkflow(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		On struct {
			Push struct{ Tags []string } `yaml:"push"`
		} `yaml:"on"`
		Jobs map[string]struct {
			Steps []struct {
				ID   string            `yaml:"id"`
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.On.Push.Tags) == 0 {
		t.Errorf("release.yml does not run on tag pushes")
	}
	job, ok := w.Jobs["image"]
	if !ok {
		t.Fatalf("release.yml has no image job")
	}
	at := map[string]int{}
	for i, s := range job.Steps {
		switch {
		case strings.Contains(s.Run, ".ci/check-release-version.sh"):
			at["check"] = i
		case strings.HasPrefix(s.Uses, "docker/build-push-action@"):
			at["push"] = i
			if p := s.With["platforms"]; !strings.Contains(p, "linux/amd64") || !strings.Contains(p, "linux/arm64") {
				t.Errorf("image platforms = %q, want linux/amd64 and linux/arm64", p)
			}
			if s.With["push"] != "true" {
				t.Errorf("build-push-action does not push")
			}
		case strings.HasPrefix(s.Uses, "actions/attest-build-provenance@"):
			at["attest"] = i
			if !strings.Contains(s.With["subject-digest"], "steps.push.outputs.digest") {
				t.Errorf("provenance attests %q, not the pushed digest", s.With["subject-digest"])
			}
		case strings.Contains(s.Run, "git push -f origin"):
			at["major"] = i
		}
	}
	for _, k := range []string{"check", "push", "attest", "major"} {
		if _, ok := at[k]; !ok {
			t.Errorf("release.yml has no %s step", k)
		}
	}
	if at["check"] > at["push"] || at["push"] > at["attest"] || at["attest"] > at["major"] {
		t.Errorf("release.yml steps out of order (check, push, attest, move major tag): %v", at)
	}
}
