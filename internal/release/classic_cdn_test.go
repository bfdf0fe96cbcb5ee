package release_test

import (
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/report"
)

// TestReleaseClassicCDN releases behind the emulator's classic CDN
// endpoint (demo-cdn/demo-cdn-ep), whose originPath is /<container> as on
// Azure: pages must link their static files on the endpoint's host, and a
// changed file without a content hash must be purged there. The CDN keeps
// what it cached until a purge, so a release that skips the purge leaves
// the old content served (stale) and the next release's owed purge
// replaces it (fresh).
func TestReleaseClassicCDN(t *testing.T) {
	h := newHarness(t)
	h.env["DJDEPLOY_CDN_PROFILE"] = "demo-cdn"
	h.env["DJDEPLOY_CDN_ENDPOINT"] = "demo-cdn-ep"
	classic := h.emu.CDNURL("demo-cdn", "demo-cdn-ep")
	if classic == "" || h.cdnBase() != classic+"/" {
		t.Fatalf("the emulator has no classic endpoint demo-cdn/demo-cdn-ep (CDN URL %q)", classic)
	}
	dir := e2e.Project(t, "django-app")

	first := mustSucceed(t, h.release(t, nil, dir))
	// Azure's mapping: blob <container>/<prefix><name> is <endpoint>/<prefix><name>.
	if want := classic + "/" + h.prefix; first.StaticURL != want {
		t.Fatalf("STATIC_URL is %q, want the classic endpoint's %q", first.StaticURL, want)
	}
	h.assertServes(t, first.ReleaseID) // every link on the classic host, 200
	siteCSS := strings.TrimSuffix(first.StaticURL, "/") + "/pages/css/site.css"
	for i := 0; i < 2; i++ { // the second answer comes from the CDN's cache
		code, hdr, body := h.get(t, siteCSS)
		if code != 200 || !strings.Contains(body, "#0b6bcb") {
			t.Fatalf("GET %s: %d:\n%s", siteCSS, code, body)
		}
		if i == 1 && hdr.Get("X-Cache") != "TCP_HIT" {
			t.Fatalf("GET %s again: X-Cache %q, want TCP_HIT (the CDN did not cache it)", siteCSS, hdr.Get("X-Cache"))
		}
	}

	e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #00897b;")
	skipped := mustSucceed(t, h.release(t, nil, dir, "--skip", "purge"))
	if st := stepOf(skipped, "purge"); st.Status != report.StepSkipped {
		t.Fatalf("purge with --skip purge: %+v", st)
	}
	if code, _, body := h.get(t, siteCSS); code != 200 || !strings.Contains(body, "#0b6bcb") {
		t.Fatalf("without a purge the CDN should still serve its cached site.css (%d):\n%s", code, body)
	}

	// The next release (another id, same static files) sends the purge
	// the skipped one owes, on the classic endpoint.
	bump(t, dir, "classic-cdn")
	purgesBefore := len(endpointPurges(h, "demo-cdn-ep"))
	r := h.release(t, nil, dir)
	rep := mustSucceed(t, r)
	if st := stepOf(rep, "purge"); st.Status != report.StepDone {
		t.Errorf("purge: %+v", st)
	}
	if strings.Contains(r.Stderr, "not purged") {
		t.Errorf("paths were left out of the purge:\n%s", r.Stderr)
	}
	wantPath := "/" + h.prefix + "pages/css/site.css"
	sent := false
	for _, p := range endpointPurges(h, "demo-cdn-ep")[purgesBefore:] {
		for _, path := range p {
			sent = sent || path == wantPath
		}
	}
	if !sent {
		t.Errorf("demo-cdn-ep received no purge of %s; purges %v, report %v", wantPath, endpointPurges(h, "demo-cdn-ep"), rep.PurgedPaths)
	}
	if code, _, body := h.get(t, siteCSS); code != 200 || !strings.Contains(body, "#00897b") {
		t.Errorf("the CDN serves a stale site.css after the purge (%d):\n%s", code, body)
	}
	h.assertServes(t, rep.ReleaseID)
}

// endpointPurges lists the purges one of the emulator's CDN endpoints
// received.
func endpointPurges(h *harness, endpoint string) [][]string {
	for _, ep := range h.emu.State().CDN {
		if ep.Endpoint == endpoint {
			return ep.Purges
		}
	}
	return nil
}
