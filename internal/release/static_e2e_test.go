package release_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// siteBytes is what visitors get: production's page, and every static
// file of the prefix both through the CDN and from the origin container
// (the CDN's cache alone could hide an overwritten blob).
type siteBytes struct {
	page  string
	files map[string]string // URL (or "origin:" + blob name) -> body
}

func (h *harness) siteBytes(t *testing.T) siteBytes {
	t.Helper()
	p := h.production(t)
	s := siteBytes{page: p.Body, files: map[string]string{}}
	names := h.blobs(t)
	cdnBase := h.cdnBlobBase(t, p, names)
	cc := h.blob.ServiceClient().NewContainerClient(h.cont)
	for n := range names {
		code, _, body, err := e2e.Get(h.http, cdnBase+n)
		if err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", cdnBase+n, code, err)
		}
		s.files[cdnBase+n] = body
		resp, err := cc.NewBlobClient(n).DownloadStream(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		s.files["origin:"+n] = string(b)
	}
	return s
}

// cdnBlobBase is the CDN URL of the container's blob names: the page's
// first link, less the blob name it ends with.
func (h *harness) cdnBlobBase(t *testing.T, p page, names map[string]string) string {
	t.Helper()
	cdnBase := ""
	for _, l := range p.Static {
		for n := range names {
			if strings.HasSuffix(l, "/"+n) && len(l)-len(n) > len(cdnBase) {
				cdnBase = l[:len(l)-len(n)]
			}
		}
		if cdnBase != "" {
			break
		}
	}
	if cdnBase == "" {
		t.Fatalf("no link of production's page is a blob of the prefix: %v", p.Static)
	}
	return cdnBase
}

// changedIn reports every URL of before whose bytes differ in after (new
// URLs in after are fine: nothing linked them before).
func (before siteBytes) changedIn(after siteBytes) []string {
	var out []string
	if before.page != after.page {
		out = append(out, "production's page")
	}
	for u, b := range before.files {
		if a, ok := after.files[u]; !ok || a != b {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// TestFailedReleaseLeavesStaticURLs: issue 12's reproduction 5. A release
// that changes site.css (a name without a content hash) and fails at
// deploy, or after the swap at verification, leaves the page and every
// static URL byte-identical; the release that succeeds then serves the
// new site.css.
func TestFailedReleaseLeavesStaticURLs(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	views, err := os.ReadFile(filepath.Join(dir, "pages/views.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(views), viewsHealthz) {
		t.Fatalf("pages/views.py changed; update viewsHealthz:\n%s", views)
	}
	setHealthz := func(t *testing.T, body string) {
		t.Helper()
		s := strings.Replace(string(views), viewsHealthz, body, 1)
		if err := os.WriteFile(filepath.Join(dir, "pages/views.py"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	live := mustSucceed(t, h.release(t, nil, dir)).ReleaseID
	h.assertServes(t, live)
	before := h.siteBytes(t)

	e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #c62828;")
	for i, tc := range []struct {
		name, step string
		args       []string
		inject     func(t *testing.T)
	}{
		{"deploy fails", "deploy", nil, func(t *testing.T) { h.emu.FailNextDeployment(app, slot, emulator.AtBuild) }},
		{"verification fails after the swap", "swap", []string{"--verify-timeout", "5s"}, func(t *testing.T) {
			prodHost := strings.TrimPrefix(h.emu.ProductionURL(app), "http://")
			setHealthz(t, fmt.Sprintf("def healthz(request):\n    if request.get_host() == %q:\n        return JsonResponse({\"status\": \"broken\"}, status=503)\n    return JsonResponse({\"status\": \"ok\", \"release\": release_id()})\n", prodHost))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				h.emu.FailNextDeployment(app, slot, emulator.NoFailure)
				setHealthz(t, viewsHealthz)
			})
			bump(t, dir, fmt.Sprintf("static-urls-%d", i))
			tc.inject(t)
			mustFailAt(t, h.release(t, nil, dir, tc.args...), tc.step)
			if changed := before.changedIn(h.siteBytes(t)); len(changed) > 0 {
				t.Errorf("a release that failed at %s changed what these URLs serve: %v", tc.step, changed)
			}
			h.assertServes(t, live)
		})
	}

	bump(t, dir, "static-urls-ok")
	rep := mustSucceed(t, h.release(t, nil, dir))
	h.assertServes(t, rep.ReleaseID)
	after := h.siteBytes(t)
	var css []string
	for u, b := range after.files {
		if strings.HasSuffix(u, "pages/css/site.css") {
			css = append(css, u)
			if !strings.Contains(b, "#c62828") {
				t.Errorf("%s does not serve the released site.css after the release", u)
			}
		}
	}
	if len(css) != 2 {
		t.Errorf("site.css found at %v; want its CDN URL and its blob", css)
	}
}

// TestStateIsPrivate: issue 12's reproduction 8. djdeploy's state (lock,
// history, manifests, resume state) is not in the static container, so
// the CDN answers 404 for it; state an older version left there moves to
// the private container at the next release, history included; a
// one-file release writes no state beside the static files.
func TestStateIsPrivate(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	first := mustSucceed(t, h.release(t, nil, dir)).ReleaseID
	svc := h.blob.ServiceClient()
	pub, priv := svc.NewContainerClient(h.cont), svc.NewContainerClient(staticsync.StateContainer)
	statePrefix := h.cont + "/" + h.prefix + staticsync.MetaDir
	publicState := func(t *testing.T) []string {
		t.Helper()
		var out []string
		for n := range h.allBlobs(t) {
			if strings.Contains(n, staticsync.MetaDir) {
				out = append(out, n)
			}
		}
		return out
	}
	if s := publicState(t); len(s) > 0 {
		t.Errorf("state in the static container after a release: %v", s)
	}

	// An older version's layout: the state back under the prefix in the
	// static container, none in the private one.
	ctx := context.Background()
	pager := priv.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &statePrefix})
	var moved []string
	for pager.More() {
		pg, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range pg.Segment.BlobItems {
			name := *b.Name
			if strings.HasSuffix(name, "/lock") {
				if _, err := priv.NewBlobClient(name).Delete(ctx, nil); err != nil {
					t.Fatal(err)
				}
				continue
			}
			resp, err := priv.NewBlobClient(name).DownloadStream(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			legacy := h.prefix + staticsync.MetaDir + strings.TrimPrefix(name, statePrefix)
			if _, err := pub.NewBlockBlobClient(legacy).UploadBuffer(ctx, body, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := priv.NewBlobClient(name).Delete(ctx, nil); err != nil {
				t.Fatal(err)
			}
			moved = append(moved, legacy)
		}
	}
	if len(moved) < 2 {
		t.Fatalf("moved %v back to the static container; want the history and a manifest at least", moved)
	}

	e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #6a1b9a;")
	bump(t, dir, "private-state")
	before := h.allBlobs(t)
	second := mustSucceed(t, h.release(t, nil, dir)).ReleaseID
	p := h.assertServes(t, second)
	if s := publicState(t); len(s) > 0 {
		t.Errorf("the older version's state is still in the static container: %v", s)
	}
	for _, n := range changedBlobs(before, h.allBlobs(t)) {
		if strings.Contains(n, staticsync.MetaDir) {
			t.Errorf("the release wrote state beside the static files: %s", n)
		}
	}
	// The history moved with it: both releases reached production.
	resp, err := h.stateBlob("production.json").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatalf("no production history in the private container: %v", err)
	}
	hist, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(hist), first) || !strings.Contains(string(hist), second) {
		t.Errorf("production history after the move names neither or one of %s, %s:\n%s", first, second, hist)
	}
	if props, err := priv.GetProperties(ctx, nil); err != nil || props.BlobPublicAccess != nil {
		t.Errorf("the state container is not private: %v %v", props.BlobPublicAccess, err)
	}
	base := h.cdnBlobBase(t, p, h.blobs(t))
	for _, name := range []string{"production.json", "lock", "releases/" + second + ".json"} {
		u := base + h.prefix + staticsync.MetaDir + name
		if code, _, _, err := e2e.Get(h.http, u); err != nil || code != 404 {
			t.Errorf("GET %s through the CDN: %d %v, want 404", u, code, err)
		}
	}
}
