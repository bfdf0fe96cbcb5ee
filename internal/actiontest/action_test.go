package actiontest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
)

// TestActionUnderAct runs the action the way a user's workflow does
// (`uses: ./` with the repository's real action.yml), under act on a private
// Docker engine:
//
//   - the image action.yml names (docker://ghcr.io/djdeploy/djdeploy:VERSION)
//     is built from this commit's Dockerfile and tagged with exactly that
//     name, as release.yml does, and act runs it with --pull=false: the test
//     exercises the action.yml users get and the image the release pushes,
//     not a copy of either;
//   - command: build writes the artifact into the workspace and sets its
//     outputs (release-id included);
//   - command: release reaches the emulator on the host network, sets its
//     outputs, and production then serves that release;
//   - a release whose app never starts fails the step with outcome=failed
//     and an error annotation naming the cause, and production is unchanged.
func TestActionUnderAct(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the action under act takes minutes")
	}
	py := e2e.Require(t, "the action under act: releases to the emulator")
	root := e2e.Root(t)
	act := requireTools(t, root)
	eng := startEngine(t, root)
	baseImages(t, eng, root)

	image := actionImage(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if out, err := eng.docker(ctx, nil, "build", "-q", "-t", image, root); err != nil {
		t.Fatalf("building %s from the Dockerfile: %v\n%s", image, err, out)
	}

	emu := e2e.Emulator(t, py)
	ws := workspace(t, root)
	// The machine reaches PyPI through its own certificate authorities
	// (PIP_CERT, the system bundle); the image's Debian bundle does not
	// carry them, so the build's pip gets the host's bundle, copied into
	// the workspace that act binds into every container.
	hostEnv := hostCA(t, ws)

	t.Run("build", func(t *testing.T) {
		out := runAct(t, eng, act, ws, "build", `
      - id: djdeploy
        uses: ./
        with:
          command: build
          project: app
          out: out
          dependency-mode: local
`, hostEnv)
		o := outputs(t, ws)
		if o["outcome"] != "succeeded" || o["release-id"] == "" {
			t.Errorf("build outputs %v: want outcome succeeded and a release-id\n%s", o, out)
		}
		for _, f := range []string{"out/app.zip", "out/release.json"} {
			if _, err := os.Stat(filepath.Join(ws, f)); err != nil {
				t.Errorf("command: build wrote no %s: %v", f, err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(ws, "out", "release.json")); err == nil && !strings.Contains(string(b), o["release-id"]) {
			t.Errorf("release.json does not name the release-id output %q:\n%s", o["release-id"], b)
		}
		// A hyphenated input reached djdeploy (INPUT_DEPENDENCY-MODE: a sh
		// entrypoint dropped such variables).
		var m struct {
			DependencyMode string `json:"dependency_mode"`
		}
		if b, err := os.ReadFile(filepath.Join(ws, "out", "release.json")); err == nil {
			if err := json.Unmarshal(b, &m); err != nil || m.DependencyMode != "local" {
				t.Errorf("the dependency-mode input did not take effect (%v); release.json:\n%s", err, b)
			}
		}
	})

	env := emulatorEnv(t, emu, ws)
	for k, v := range hostEnv {
		env[k] = v
	}
	release := `
      - id: djdeploy
        uses: ./
        with:
          command: release
          project: app
          fix-settings: "true"
          warmup-timeout: 60s
          check-release: "true"
          github-deployment: "false"
`
	var released string
	t.Run("release", func(t *testing.T) {
		out := runAct(t, eng, act, ws, "release", release, env)
		o := outputs(t, ws)
		if o["outcome"] != "succeeded" || o["release-id"] == "" || o["url"] == "" {
			t.Fatalf("release outputs %v: want outcome succeeded, a release-id and a url\n%s", o, out)
		}
		// act prints the job summary the action wrote into its log.
		for _, re := range []string{`### Steps`, `\| swap \| ✅ done`, regexp.QuoteMeta(o["release-id"])} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("the job summary lacks %s:\n%s", re, out)
			}
		}
		// The url output is production's, and production serves this release.
		code, _, body, err := e2e.Get(&http.Client{Timeout: 30 * time.Second}, strings.TrimSuffix(o["url"], "/")+"/")
		if err != nil || code != 200 || !strings.Contains(body, `<code id="release-id">`+o["release-id"]+`</code>`) {
			t.Errorf("the url output %s answers %d, %v, and not with release %s:\n%s", o["url"], code, err, o["release-id"], body)
		}
		page, err := e2e.Production(&http.Client{Timeout: 30 * time.Second}, emu, emu.Env()["DJDEPLOY_APP"])
		if err != nil {
			t.Fatal(err)
		}
		if page.Release != o["release-id"] {
			t.Errorf("production serves release %q, the action released %q", page.Release, o["release-id"])
		}
		released = page.Release
	})

	t.Run("failed-release", func(t *testing.T) {
		app, slot := emu.Env()["DJDEPLOY_APP"], emu.Env()["DJDEPLOY_SLOT"]
		if err := emu.FailNextDeployment(app, slot, emulator.AtRuntime); err != nil {
			t.Fatal(err)
		}
		defer emu.FailNextDeployment(app, slot, emulator.NoFailure)
		e2e.Edit(t, filepath.Join(ws, "app"), "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, a release that never starts")
		out := runActFailing(t, eng, act, ws, "failed", release, env)
		o := outputs(t, ws)
		if o["outcome"] != "failed" {
			t.Errorf("outcome output %q after a failed release, want failed\n%s", o["outcome"], out)
		}
		if !strings.Contains(out, "The release failed at step `deploy`") {
			t.Errorf("the job summary does not name the failed step:\n%s", out)
		}
		if !regexp.MustCompile(`::error title=djdeploy::.*RuntimeFailed`).MatchString(out) {
			t.Errorf("no error annotation naming the cause (RuntimeFailed) in act's log:\n%s", out)
		}
		page, err := e2e.Production(&http.Client{Timeout: 30 * time.Second}, emu, app)
		if err != nil {
			t.Fatal(err)
		}
		if released != "" && page.Release != released {
			t.Errorf("production serves %q after a failed release, want the previous %q", page.Release, released)
		}
	})

	// command: rollback in the action's container: a second release, then
	// production back to the first from the package it kept (issue 12).
	t.Run("rollback", func(t *testing.T) {
		if released == "" {
			t.Fatal("the release case put nothing into production to roll back to")
		}
		out := runAct(t, eng, act, ws, "second", release, env)
		if o := outputs(t, ws); o["outcome"] != "succeeded" || o["release-id"] == "" || o["release-id"] == released {
			t.Fatalf("second release outputs %v (first %s)\n%s", o, released, out)
		}
		out = runAct(t, eng, act, ws, "rollback", `
      - id: djdeploy
        uses: ./
        with:
          command: rollback
          warmup-timeout: 60s
          check-release: "true"
          github-deployment: "false"
`, env)
		o := outputs(t, ws)
		if o["outcome"] != "succeeded" || o["release-id"] != released {
			t.Fatalf("rollback outputs %v, want outcome succeeded and release-id %s\n%s", o, released, out)
		}
		if !strings.Contains(out, "djdeploy rollback to") {
			t.Errorf("the job summary does not say it was a rollback:\n%s", out)
		}
		page, err := e2e.Production(&http.Client{Timeout: 30 * time.Second}, emu, emu.Env()["DJDEPLOY_APP"])
		if err != nil {
			t.Fatal(err)
		}
		if page.Release != released {
			t.Errorf("production serves %q after the rollback, want %s", page.Release, released)
		}
	})
}

// actionImage is action.yml's runs.image without docker://.
func actionImage(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Runs struct{ Image string } `yaml:"runs"`
	}
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	img, ok := strings.CutPrefix(a.Runs.Image, "docker://")
	if !ok {
		t.Fatalf("action.yml runs %q, not a prebuilt docker:// image", a.Runs.Image)
	}
	return img
}

// workspace is a git repository holding the real action.yml and the
// example app under app/, as a user's repository would use `uses: ./`.
func workspace(t *testing.T, root string) string {
	t.Helper()
	ws := t.TempDir()
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "action.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(ws, "app"), os.DirFS(e2e.Project(t, "django-app"))); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euc", `git init -q -b main . && git add -A && git -c user.email=t@example.com -c user.name=t commit -qm app`)
	cmd.Dir = ws
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git: %v\n%s", err, out)
	}
	return ws
}

// emulatorEnv is the emulator's export block for the job: the CA file is
// copied into the workspace, which act binds at the same path in every
// container, and the emulator's admin secret stays with the test.
func emulatorEnv(t *testing.T, emu *emulator.Emulator, ws string) map[string]string {
	t.Helper()
	env := emu.Env()
	delete(env, emulator.AdminSecretEnv)
	if ca := env["DJDEPLOY_CA_FILE"]; ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(ws, ".emulator-ca.pem")
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		env["DJDEPLOY_CA_FILE"] = dst
	}
	return env
}

// runAct runs one workflow whose steps are given; a last step writes the
// djdeploy step's outputs to outputs.txt in the workspace, whatever the
// outcome. It fails the test unless the job succeeded.
func runAct(t *testing.T, eng *engine, act, ws, name, steps string, env map[string]string) string {
	t.Helper()
	out, err := act1(t, eng, act, ws, name, steps, env)
	if err != nil || !strings.Contains(out, "Job succeeded") {
		t.Fatalf("act %s: %v\n%s", name, err, out)
	}
	return out
}

// runActFailing is runAct for a job that must fail.
func runActFailing(t *testing.T, eng *engine, act, ws, name, steps string, env map[string]string) string {
	t.Helper()
	out, err := act1(t, eng, act, ws, name, steps, env)
	if err == nil || !strings.Contains(out, "Job failed") {
		t.Fatalf("act %s: want a failed job, got err=%v\n%s", name, err, out)
	}
	return out
}

var outputNames = []string{"outcome", "release-id", "url", "slot-url", "deployment-id", "static-uploaded", "duration"}

func act1(t *testing.T, eng *engine, act, ws, name, steps string, env map[string]string) (string, error) {
	t.Helper()
	var wf strings.Builder
	fmt.Fprintf(&wf, "name: %s\non: push\njobs:\n  djdeploy:\n    runs-on: ubuntu-latest\n", name)
	if len(env) > 0 {
		wf.WriteString("    env:\n")
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&wf, "      %s: %q\n", k, env[k])
		}
	}
	wf.WriteString("    steps:\n      - uses: actions/checkout@v4\n")
	wf.WriteString(strings.TrimPrefix(steps, "\n"))
	wf.WriteString("      - name: outputs\n        if: always()\n        run: |\n")
	for _, o := range outputNames {
		fmt.Fprintf(&wf, "          echo '%s=${{ steps.djdeploy.outputs.%s }}' >> outputs.txt\n", o, o)
	}
	dir := filepath.Join(ws, ".github", "workflows")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(file, []byte(wf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(ws, "outputs.txt"))

	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "config", "act"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An actrc keeps act from asking which image size to use.
	if err := os.WriteFile(filepath.Join(home, "config", "act", "actrc"), []byte("-P ubuntu-latest=debian:bookworm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, act, "push", "-C", ws, "-W", file,
		"-P", "ubuntu-latest=debian:bookworm", "--pull=false", "--rm", "--bind",
		"--no-cache-server", "--container-daemon-socket", "-")
	cmd.Dir = ws
	cmd.Env = append(eng.env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// outputs reads what the workflow's last step wrote.
func outputs(t *testing.T, ws string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(ws, "outputs.txt"))
	if err != nil {
		t.Fatalf("the workflow wrote no outputs: %v", err)
	}
	defer f.Close()
	o := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			o[k] = v
		}
	}
	return o
}

// hostCA copies the CA bundle this machine's pip uses into the workspace and
// returns the variables that make pip (and Python's ssl) in the action's
// container use it.
func hostCA(t *testing.T, ws string) map[string]string {
	t.Helper()
	src := os.Getenv("PIP_CERT")
	if src == "" {
		src = "/etc/ssl/certs/ca-certificates.crt"
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return map[string]string{}
	}
	dst := filepath.Join(ws, ".host-ca.pem")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"PIP_CERT": dst, "SSL_CERT_FILE": dst, "REQUESTS_CA_BUNDLE": dst}
}
