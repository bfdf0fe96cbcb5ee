package release_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
)

// kuduDeploy deploys a zip to the slot the way a tool other than djdeploy
// does (az webapp deploy, a portal upload): straight to Kudu, no lock, no
// app setting changed. It waits for the deployment to finish.
func kuduDeploy(t *testing.T, h *harness, zipPath string) string {
	t.Helper()
	b, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	scm := h.emu.SCMURL(app, h.env["DJDEPLOY_SLOT"])
	req, _ := http.NewRequest(http.MethodPost, scm+"/api/publish?type=zip&async=true", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.emu.Token())
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("SCM-DEPLOYMENT-ID")
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("Kudu publish: %d, id %q", resp.StatusCode, id)
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, scm+"/api/deployments/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+h.emu.Token())
		resp, err := h.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Status   int  `json:"status"`
			Complete bool `json:"complete"`
		}
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if d.Complete {
			if d.Status != 4 {
				t.Fatalf("the other deployment %s ended with Kudu status %d", id, d.Status)
			}
			return id
		}
	}
	t.Fatalf("the other deployment %s did not finish", id)
	return ""
}

// otherBuild builds a copy of the example app whose home page says text.
func otherBuild(t *testing.T, h *harness, text string) string {
	t.Helper()
	other := e2e.Project(t, "django-app")
	e2e.Edit(t, other, "pages/templates/pages/home.html", "Hello from Django on App Service", text)
	out := filepath.Join(t.TempDir(), "build")
	if r := h.djdeploy(t, nil, "build", "--project", other, "--out", out); r.Code != 0 {
		t.Fatalf("build: %s", r)
	}
	return filepath.Join(out, "app.zip")
}

// TestReleaseIdentityByContent: what a slot runs is Kudu's active
// deployment, not the DJDEPLOY_RELEASE_ID label anyone's deploy leaves in
// place (issue 12, items 1 and 2).
func TestReleaseIdentityByContent(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello from the labelled release")
	other := otherBuild(t, h, "Hello from code no release built")

	t.Run("a stale label never skips the deploy", func(t *testing.T) {
		// The release deploys, then fails its warm-up: its resume state
		// says deployed, and the slot's label names it.
		h.emu.Faults().Add(emulator.Fault{Method: "GET", Path: "/healthz", Host: "site", Status: http.StatusServiceUnavailable, Count: -1})
		first := mustFailAt(t, h.release(t, nil, dir), "warm-up")
		h.emu.Faults().Clear()
		// Someone deploys other code to the slot; the label stays.
		kuduDeploy(t, h, other)
		// The slot's app reports the release id baked into the package it
		// runs, not the label: what --check-release relies on.
		m, err := artifact.ReadManifest(filepath.Join(filepath.Dir(other), artifact.ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		var health struct{ Release string }
		if _, _, body := h.get(t, h.emu.SlotURL(app, slot)+"/healthz"); json.Unmarshal([]byte(body), &health) != nil || health.Release != m.ReleaseID {
			t.Errorf("the slot runs %s's package but reports release %q (label %s): %s", m.ReleaseID, health.Release, first.ReleaseID, body)
		}
		// Run again: it must deploy its own code, not swap the other in.
		r := h.release(t, nil, dir)
		rep := mustSucceed(t, r)
		if rep.ReleaseID != first.ReleaseID {
			t.Fatalf("release id %s, the first run's was %s", rep.ReleaseID, first.ReleaseID)
		}
		if st := stepOf(rep, "deploy"); strings.Contains(st.Detail, "already runs") {
			t.Errorf("deploy skipped on the label: %+v", st)
		}
		p := h.assertServes(t, rep.ReleaseID)
		if !strings.Contains(p.Body, "Hello from the labelled release") || strings.Contains(p.Body, "no release built") {
			t.Errorf("production serves other code under release %s:\n%s", rep.ReleaseID, p.Body)
		}
	})

	t.Run("a deploy during the warm-up is never swapped in", func(t *testing.T) {
		before := h.production(t)
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from the labelled release", "Hello from the next release")
		// The warm-up's first probe is held for 30 s; meanwhile another
		// tool deploys other code to the slot, behind djdeploy's lock.
		h.emu.Faults().Add(emulator.Fault{Method: "GET", Path: "/healthz", Host: "site", Delay: 30 * time.Second, Count: 1})
		h.emu.ResetRequests()
		done := make(chan string, 1)
		go func() {
			for h.emu.Requests("GET", "/healthz") == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			done <- kuduDeploy(t, h, other)
		}()
		r := h.release(t, nil, dir, "--warmup-timeout", "2m")
		otherID := <-done
		rep := mustFailAt(t, r, "swap")
		if !strings.Contains(rep.Error, "runs deployment "+otherID) || !strings.Contains(rep.Error, "nothing was swapped") {
			t.Errorf("the swap step does not name the other deployment %s: %s", otherID, rep.Error)
		}
		if p := h.production(t); p.Release != before.Release || strings.Contains(p.Body, "no release built") {
			t.Errorf("production changed: serves %q (was %q)\n%s", p.Release, before.Release, p.Body)
		}
	})
}
