package release_test

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// rollbackArgs are a rollback's flags as a user passes them: no project.
func rollbackArgs(more ...string) []string {
	return append([]string{"rollback", "--json",
		"--health-path", "/healthz", "--warmup-timeout", "30s", "--verify-timeout", "20s",
		"--deploy-timeout", "2m", "--swap-timeout", "2m", "--purge-timeout", "1m", "--lock-timeout", "30s"}, more...)
}

func (h *harness) rollback(t *testing.T, ctx context.Context, more ...string) run {
	t.Helper()
	return withReport(t, run{Result: e2e.Main(ctx, h.env, rollbackArgs(more...)...)})
}

func (h *harness) status(t *testing.T) release.Status {
	t.Helper()
	r := h.djdeploy(t, nil, "status", "--json")
	var st release.Status
	if ok, err := e2e.DecodeResult(r.Stdout, &st); r.Code != 0 || !ok || err != nil {
		t.Fatalf("status: %v %s", err, r)
	}
	return st
}

func (h *harness) releases(t *testing.T) []ledger.Entry {
	t.Helper()
	r := h.djdeploy(t, nil, "releases", "--json")
	var out struct {
		Releases []ledger.Entry `json:"releases"`
	}
	if ok, err := e2e.DecodeResult(r.Stdout, &out); r.Code != 0 || !ok || err != nil {
		t.Fatalf("releases: %v %s", err, r)
	}
	return out.Releases
}

// siteCSS is the un-hashed URL of the example's stylesheet on the CDN,
// whose bytes a rollback must bring back.
func (h *harness) siteCSS(t *testing.T) string {
	t.Helper()
	_, _, body := h.get(t, h.cdnBase()+h.prefix+"pages/css/site.css")
	return body
}

// TestRollback: releases, status and rollback end to end (issue 12): a
// rollback after a bad release is a swap (the slot still runs the previous
// release's deployment), a second goes to N-2 from the kept package, a
// rollback after someone else's deploy to the slot deploys the kept
// package, an interrupted rollback resumes, and bad input changes nothing.
func TestRollback(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")

	// No release yet: nothing to roll back to (exit 2, nothing changed).
	if r := h.rollback(t, context.Background()); r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "nothing to roll back to") {
		t.Fatalf("rollback before any release: %s", r)
	}

	var ids []string
	css := map[string]string{}
	for i, text := range []string{"Release one", "Release two", "Release three"} {
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", text)
		e2e.Edit(t, dir, "pages/static/pages/css/site.css", "body", "/* "+text+" */\nbody")
		rep := mustSucceed(t, h.release(t, nil, dir))
		ids = append(ids, rep.ReleaseID)
		css[rep.ReleaseID] = h.siteCSS(t)
		if !strings.Contains(css[rep.ReleaseID], text) {
			t.Fatalf("release %d: site.css does not say %q:\n%s", i+1, text, css[rep.ReleaseID])
		}
		e2e.Edit(t, dir, "pages/templates/pages/home.html", text, "Hello from Django on App Service")
	}
	// A failed release is recorded too.
	h.emu.Faults().Add(emulator.Fault{Method: "GET", Path: "/healthz", Host: "site", Status: http.StatusServiceUnavailable, Count: -1})
	e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Release four never goes out")
	failed := mustFailAt(t, h.release(t, nil, dir, "--warmup-timeout", "3s"), "warm-up")
	h.emu.Faults().Clear()
	// A pull request's preview, on its own slot pr-7.
	e2e.Edit(t, dir, "pages/templates/pages/home.html", "Release four never goes out", "A pull request")
	preview := mustSucceed(t, withReport(t, h.djdeploy(t, nil, "preview", "--project", dir, "--pr", "7", "--json",
		"--health-path", "/healthz", "--warmup-timeout", "30s", "--deploy-timeout", "2m")))

	t.Run("releases and status after success and failure", func(t *testing.T) {
		rel := h.releases(t)
		if len(rel) != 5 || rel[0].ReleaseID != preview.ReleaseID || rel[0].Kind != ledger.KindPreview || rel[0].Slot != "pr-7" ||
			rel[1].ReleaseID != failed.ReleaseID || rel[1].Outcome != report.Failed || rel[1].FailedStep != "warm-up" ||
			rel[2].ReleaseID != ids[2] || rel[2].Outcome != report.Succeeded || !rel[2].Live || rel[2].Deployment == "" || rel[2].LockHolder == "" {
			t.Fatalf("releases: %+v", rel)
		}
		st := h.status(t)
		if st.Production.ReleaseID != ids[2] || !st.Production.Recorded {
			t.Errorf("status production: %+v", st.Production)
		}
		// Each slot is named by its content: staging runs the failed
		// release's deployment, pr-7 the preview's.
		bySlot := map[string]release.SlotStatus{}
		for _, s := range st.Slots {
			bySlot[s.Slot] = s
		}
		if s := bySlot["staging"]; len(st.Slots) != 2 || s.ReleaseID != failed.ReleaseID || !s.Recorded {
			t.Errorf("status slots: %+v", st.Slots)
		}
		if s := bySlot["pr-7"]; s.ReleaseID != preview.ReleaseID || !s.Recorded || s.Warning != "" {
			t.Errorf("status of the preview slot: %+v", s)
		}
	})

	t.Run("rollback after a bad release goes to the previous one", func(t *testing.T) {
		r := h.rollback(t, context.Background())
		rep := mustSucceed(t, r)
		if rep.ReleaseID != ids[1] || rep.Kind != "rollback" || rep.From != ids[2] {
			t.Fatalf("rolled back to %s from %s (kind %q), want %s from %s", rep.ReleaseID, rep.From, rep.Kind, ids[1], ids[2])
		}
		// The slot ran the failed release four: release two's kept
		// package was deployed.
		if st := stepOf(rep, "deploy"); st.Status != report.StepDone {
			t.Errorf("deploy step of a rollback from a slot running another release: %+v", st)
		}
		p := h.assertServes(t, ids[1])
		if !strings.Contains(p.Body, "Release two") {
			t.Errorf("production does not serve release two:\n%s", p.Body)
		}
		if got := h.siteCSS(t); got != css[ids[1]] {
			t.Errorf("site.css after the rollback:\n%s\nwant release two's:\n%s", got, css[ids[1]])
		}
		st := h.status(t)
		if st.Production.ReleaseID != ids[1] {
			t.Errorf("status after rollback: production %+v", st.Production)
		}
		if rel := h.releases(t); rel[0].Kind != ledger.KindRollback || rel[0].ReleaseID != ids[1] || rel[0].From != ids[2] {
			t.Errorf("newest ledger entry: %+v", rel[0])
		}
	})

	t.Run("a rollback to what the slot still runs is only a swap", func(t *testing.T) {
		// The rollback's swap left release three's own deployment on the
		// slot: recognised by content, nothing is deployed.
		rep := mustSucceed(t, h.rollback(t, context.Background(), ids[2]))
		if st := stepOf(rep, "deploy"); st.Status != report.StepSkipped || !strings.Contains(st.Detail, "already runs") {
			t.Errorf("deploy step: %+v", st)
		}
		h.assertServes(t, ids[2])
		if got := h.siteCSS(t); got != css[ids[2]] {
			t.Errorf("site.css is not release three's again:\n%s", got)
		}
	})

	t.Run("a second rollback goes to N-2, from the kept package", func(t *testing.T) {
		rep := mustSucceed(t, h.rollback(t, context.Background()))
		// History: 1, 2, 3, 2 (rolled back from 3), 3 (from 2). Neither
		// 3 nor 2 is where an unnamed rollback goes now: both were undone.
		if rep.ReleaseID != ids[0] {
			t.Fatalf("second rollback went to %s, want release one %s", rep.ReleaseID, ids[0])
		}
		if st := stepOf(rep, "deploy"); st.Status != report.StepDone {
			t.Errorf("the slot did not run release one: it must be deployed, got %+v", st)
		}
		p := h.assertServes(t, ids[0])
		if !strings.Contains(p.Body, "Release one") {
			t.Errorf("production does not serve release one:\n%s", p.Body)
		}
	})

	t.Run("after someone else deployed to the slot, the kept package is deployed", func(t *testing.T) {
		other := otherBuild(t, h, "Hello from code no release built")
		kuduDeploy(t, h, other)
		rep := mustSucceed(t, h.rollback(t, context.Background(), ids[2]))
		if st := stepOf(rep, "deploy"); st.Status != report.StepDone {
			t.Errorf("deploy step: %+v", st)
		}
		p := h.assertServes(t, ids[2])
		if !strings.Contains(p.Body, "Release three") || strings.Contains(p.Body, "no release built") {
			t.Errorf("production after the rollback:\n%s", p.Body)
		}
	})

	t.Run("a rollback killed mid-way resumes", func(t *testing.T) {
		before := h.production(t)
		// The real binary, killed (SIGKILL: no cleanup, the lock's lease
		// left to lapse) while its warm-up waits on a slow health answer.
		h.emu.Faults().Add(emulator.Fault{Method: "GET", Path: "/healthz", Host: "site", Delay: 20 * time.Second, Count: 1})
		h.emu.ResetRequests()
		cmd, stderr := startBinary(t, e2e.Binary(t), h.env, rollbackArgs(ids[1])...)
		for deadline := time.Now().Add(2 * time.Minute); h.emu.Requests("GET", "/healthz") == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if !strings.Contains(stderr.String(), "== warm-up") {
			t.Fatalf("the rollback was not killed in its warm-up:\n%s", stderr.String())
		}
		if p := h.production(t); p.Release != before.Release {
			t.Fatalf("production changed under a killed rollback: %s, was %s", p.Release, before.Release)
		}
		h.emu.Faults().Clear()
		// The re-run waits out the dead run's lease, then finishes.
		rep := mustSucceed(t, h.rollback(t, context.Background(), append([]string{ids[1]}, "--lock-timeout", "2m")...))
		if rep.ReleaseID != ids[1] {
			t.Fatalf("resumed rollback went to %s", rep.ReleaseID)
		}
		h.assertServes(t, ids[1])
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		before := h.production(t)
		// The package of release one is gone (as prune deletes it).
		deleteKept(t, h, ids[0])
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"0123456789abcdef"}, "never reached production"},
			{[]string{"not-an-id"}, "is not a release id"},
			{[]string{ids[0]}, "has no kept package"},
			{[]string{"a", "b"}, "accepts at most 1 arg"},
		} {
			r := h.rollback(t, context.Background(), tc.args...)
			if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, tc.want) {
				t.Errorf("rollback %v: exit %d, want 2 and %q: %s", tc.args, r.Code, tc.want, r)
			}
		}
		if p := h.production(t); p.Release != before.Release {
			t.Errorf("production changed: %s, was %s", p.Release, before.Release)
		}
	})
}

// deleteKept deletes the kept package of release id from the state
// container.
func deleteKept(t *testing.T, h *harness, id string) {
	t.Helper()
	ctx := context.Background()
	n := 0
	pager := h.blob.NewListBlobsFlatPager(staticsync.StateContainer, &azblob.ListBlobsFlatOptions{})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if strings.Contains(*b.Name, "/"+staticsync.ArtifactsDir+id+"/") {
				if _, err := h.blob.DeleteBlob(ctx, staticsync.StateContainer, *b.Name, nil); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatalf("release %s had no kept package to delete", id)
	}
}
