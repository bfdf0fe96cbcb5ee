package release_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// slotDeployment is the deployment the emulator's staging slot serves.
func (h *harness) slotDeployment(t *testing.T) string {
	t.Helper()
	for _, a := range h.emu.State().Apps {
		if a.Name != app {
			continue
		}
		for _, s := range a.Slots {
			if s.Name == slot {
				return s.Release
			}
		}
	}
	return ""
}

// waitFor polls cond until it holds; a bounded wait for a condition,
// nothing is asserted about how long it took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReleaseLockCoversEveryChange: issue 12's reproductions 1 and 6.
// A deploy to the slot during a release's warm-up waits for the release
// lock instead of being swapped into production under the release's name;
// a release paused past its lease, while another release went out, stops
// instead of swapping its older code over production.
func TestReleaseLockCoversEveryChange(t *testing.T) {
	h := newHarness(t)
	base := e2e.Project(t, "django-app")
	h.assertServes(t, mustSucceed(t, h.release(t, nil, base)).ReleaseID)

	t.Run("deploy during a release waits for its lock", func(t *testing.T) {
		other := e2e.Project(t, "django-app")
		bump(t, other, "other-package")
		out := t.TempDir()
		if r := h.djdeploy(t, nil, "build", "--project", other, "--out", out); r.Code != 0 {
			t.Fatalf("building the other package: %s", r)
		}
		dir := e2e.Project(t, "django-app")
		bump(t, dir, "locked-release")
		before := h.slotDeployment(t)
		// The release's warm-up is slow: the deploys below arrive while it
		// waits for the slot it is about to swap.
		h.emu.Faults().Add(emulator.Fault{Path: "/healthz", Host: "site", Delay: 6 * time.Second, Count: 1})
		defer h.emu.Faults().Clear()
		holder := map[string]string{"GITHUB_RUN_ID": "7777", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/site"}
		var rel run
		done := make(chan struct{})
		go func() {
			defer close(done)
			rel = h.release(t, holder, dir, "--check-release")
		}()
		waitFor(t, "the release deploys to the slot", func() bool { d := h.slotDeployment(t); return d != "" && d != before })
		deployed := h.slotDeployment(t)
		pkg := filepath.Join(out, "app.zip")

		refused := h.djdeploy(t, nil, "deploy", "--package", pkg, "--lock-timeout", "0s")
		if refused.Code != 1 || !strings.Contains(refused.Stderr, "actions/runs/7777") {
			t.Errorf("a deploy with lock-timeout 0 during the release was not refused naming the holder: %s", refused)
		}
		var waited run
		waitedDone := make(chan struct{})
		go func() {
			defer close(waitedDone)
			waited = h.djdeploy(t, nil, "deploy", "--package", pkg, "--lock-timeout", "3m")
		}()
		<-done
		rep := mustSucceed(t, rel)
		if rep.DeploymentID != deployed {
			t.Errorf("the release swapped deployment %s, want its own %s", rep.DeploymentID, deployed)
		}
		<-waitedDone
		if waited.Code != 0 || !strings.Contains(waited.Stderr, "waiting for the release lock") {
			t.Errorf("the waiting deploy: %s", waited)
		}
		// The deploy went to the slot after the swap: production serves
		// the release, with every static file its page links.
		h.assertServes(t, rep.ReleaseID)
	})

	t.Run("a release paused past its lease stops", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "djdeploy")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/djdeploy").CombinedOutput(); err != nil {
			t.Fatalf("building djdeploy: %v\n%s", err, out)
		}
		paused := e2e.Project(t, "django-app")
		bump(t, paused, "paused")
		before := h.slotDeployment(t)
		// A slow warm-up keeps the paused release between its deploy and
		// its swap.
		h.emu.Faults().Add(emulator.Fault{Path: "/healthz", Host: "site", Delay: 2 * time.Second, Count: -1})
		defer h.emu.Faults().Clear()
		cmd := exec.Command(bin, releaseArgs(paused, "--lock-timeout", "0s")...)
		cmd.Env = os.Environ()
		for k, v := range e2e.With(h.env, map[string]string{staticsync.LeaseEnv: "15s"}) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		waitFor(t, "the first release deploys to the slot", func() bool { d := h.slotDeployment(t); return d != "" && d != before })
		if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		h.emu.Faults().Clear()

		// A second release waits out the paused one's lease and goes out.
		second := e2e.Project(t, "django-app")
		bump(t, second, "second")
		rep2 := mustSucceed(t, h.release(t, nil, second, "--lock-timeout", "2m"))

		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err == nil {
			code = 0
		}
		if code != 1 || !strings.Contains(stderr.String(), "lost the release lock") {
			t.Errorf("the resumed release: exit %d, want 1 saying it lost the lock\n%s", code, stderr.String())
		}
		var rep1 report.Release
		if _, err := e2e.DecodeResult(stdout.String(), &rep1); err != nil || rep1.Outcome != report.Failed {
			t.Errorf("the resumed release's report: %v %+v", err, rep1)
		}
		if s := stepOf(&rep1, "swap"); s.Status == report.StepDone {
			t.Errorf("the resumed release swapped")
		}
		h.assertServes(t, rep2.ReleaseID)
		// And nothing is left holding the lock.
		if r := h.release(t, nil, second, "--lock-timeout", "0s"); r.Code != 0 {
			t.Errorf("a release after both is refused: %s", r)
		}
	})
}
