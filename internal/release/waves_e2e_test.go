package release_test

// End-to-end tests of multi-region waves (--targets): three apps in the
// emulator stand for three regions behind one Front Door profile.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
)

var regions = []string{"demo-app", "demo-app-neu", "demo-app-eus"}

// armSetting sets one app setting on an app's slot through ARM, as a user
// would with az webapp config appsettings set.
func armSetting(t *testing.T, emu *emulator.Emulator, app, slot, name, value string) {
	t.Helper()
	base := emu.ARMEndpoint() + "/subscriptions/" + emu.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/" + app
	if slot != "production" {
		base += "/slots/" + slot
	}
	do := func(method, u string, body []byte) map[string]any {
		req, _ := http.NewRequest(method, u+"?api-version=2023-12-01", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+emu.Token())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v", method, u, resp.StatusCode, m)
		}
		return m
	}
	cur := do("POST", base+"/config/appsettings/list", nil)
	props, _ := cur["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	props[name] = value
	b, _ := json.Marshal(map[string]any{"properties": props})
	do("PUT", base+"/config/appsettings", b)
}

func productionRelease(t *testing.T, c *http.Client, emu *emulator.Emulator, app string) string {
	t.Helper()
	p, err := e2e.Production(c, emu, app)
	if err != nil {
		t.Fatalf("%s: %v", app, err)
	}
	return p.Release
}

func TestWavesAcrossRegions(t *testing.T) {
	py := e2e.Require(t, "end-to-end test")
	t.Parallel()
	res := emulator.DefaultResources()
	for _, name := range regions[1:] {
		res.Apps = append(res.Apps, emulator.AppConfig{Name: name, Slots: []string{"staging"},
			Plan: emulator.PlanConfig{Name: name + "-plan", SKU: "P1v3", Capacity: 1}, PythonVersion: "3.12"})
	}
	// An app on a Basic plan, which has no deployment slots.
	res.Apps = append(res.Apps, emulator.AppConfig{Name: "demo-app-basic", Slots: []string{"staging"},
		Plan: emulator.PlanConfig{Name: "basic-plan", SKU: "B1", Capacity: 1}, PythonVersion: "3.12"})
	// The three regions are origins of the Front Door profile.
	for i := range res.CDN {
		if res.CDN[i].Name == "demo-fd" {
			res.CDN[i].OriginGroups = []emulator.OriginGroupConfig{{Name: "regions", Origins: []emulator.OriginConfig{
				{Name: "weu", App: "demo-app"}, {Name: "neu", App: "demo-app-neu"}, {Name: "eus", App: "demo-app-eus"}}}}
		}
	}
	emu, err := emulator.Start(context.Background(), emulator.Config{Resources: res, StartAzurite: true, Python: py, Workers: 1, RetryAfter: 1})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	// Each region sends its telemetry to its own Application Insights.
	for _, app := range regions {
		for _, slot := range []string{"production", "staging"} {
			armSetting(t, emu, app, slot, "APPLICATIONINSIGHTS_CONNECTION_STRING", emu.AppInsightsConnectionString(app))
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	ctx := context.Background()
	proj := e2e.Project(t, "site")
	targets := "demo-rg/demo-app/staging,demo-rg/demo-app-neu/staging,demo-rg/demo-app-eus/staging"
	base := e2e.With(e2e.Env(emu, py), map[string]string{"DJDEPLOY_PROJECT": proj, "DJDEPLOY_FIX_SETTINGS": "true",
		"DJDEPLOY_ACCESS_TOKEN": "", "AZURE_CLIENT_ID": emu.ClientID(), "AZURE_CLIENT_SECRET": emu.ClientSecret(),
		"DJDEPLOY_TARGETS": targets, "DJDEPLOY_APP": "", "DJDEPLOY_RESOURCE_GROUP": ""})
	purges := func() int { return emu.Requests("POST", "*/purge") }
	rollout := func(r e2e.Result) *release.Rollout {
		t.Helper()
		var ro release.Rollout
		if ok, err := e2e.DecodeResult(r.Stdout, &ro); err != nil || !ok {
			t.Fatalf("release --json printed no rollout: %v\n%s", err, r)
		}
		return &ro
	}

	first := e2e.Main(ctx, base, "release", "--json")
	if first.Code != 0 {
		t.Fatalf("first rollout:\n%s", first)
	}
	relA := rollout(first).ReleaseID
	for _, app := range regions {
		if got := productionRelease(t, hc, emu, app); got != relA {
			t.Fatalf("%s serves %q after the first rollout, want %s", app, got, relA)
		}
	}

	t.Run("every region in order, one build, the CDN purged once after the last", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "</h1>", " (wave 2)</h1>")
		e2e.Edit(t, proj, "pages/static/pages/css/site.css", "{", "{ outline: 0;")
		before := purges()
		r := e2e.Main(ctx, base, "release", "--json")
		if r.Code != 0 {
			t.Fatalf("second rollout:\n%s", r)
		}
		ro := rollout(r)
		if len(ro.Regions) != 3 || ro.Outcome != "succeeded" {
			t.Fatalf("rollout: %+v", ro)
		}
		for i, reg := range ro.Regions {
			if reg.ReleaseID != ro.ReleaseID || reg.App != regions[i] {
				t.Fatalf("region %d: %s release %s (want %s, %s)", i, reg.App, reg.ReleaseID, regions[i], ro.ReleaseID)
			}
			if build := reg.Steps[1]; i > 0 && (build.Name != "build" || !strings.Contains(build.Detail, "prebuilt artifact")) {
				t.Fatalf("region %d built again: %+v", i, build)
			}
			purge := reg.Steps[len(reg.Steps)-2]
			if i < 2 && (purge.Name != "purge" || purge.Status != "skipped" || !strings.Contains(purge.Detail, "after the last region")) {
				t.Fatalf("region %d purged before the last region: %+v", i, purge)
			}
			if got := productionRelease(t, hc, emu, regions[i]); got != ro.ReleaseID {
				t.Fatalf("%s serves %q, want %s", regions[i], got, ro.ReleaseID)
			}
		}
		if got := purges() - before; got != 1 || len(ro.Regions[2].PurgedPaths) == 0 {
			t.Fatalf("purge requests during the rollout: %d (paths %v), want one after the last region", got, ro.Regions[2].PurgedPaths)
		}
		relA = ro.ReleaseID
	})

	failRegion2 := func(t *testing.T, mark string, args ...string) (e2e.Result, *release.Rollout) {
		t.Helper()
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "</h1>", " ("+mark+")</h1>")
		// Region 2's visitors: half of them ask for /healthz, which the new
		// release fails there once it is live (its swap verification of "/"
		// passes); only the bake-time watch sees it.
		l := startLoadOn(emu, "demo-app-neu", "/", "/healthz")
		go func() {
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if p, err := e2e.Production(hc, emu, "demo-app-neu"); err == nil && strings.Contains(p.Body, "("+mark+")") {
					emu.SetUnhealthyPath("demo-app-neu", "production", "/healthz")
					return
				}
			}
		}()
		before := purges()
		r := e2e.Main(ctx, base, append([]string{"release", "--json", "--health-path", "/", "--watch", "10s", "--min-requests", "3", "--max-failure-rate", "5%"}, args...)...)
		l.Stop()
		if got := purges() - before; got != 0 {
			t.Fatalf("a stopped rollout purged the CDN %d time(s)", got)
		}
		return r, rollout(r)
	}

	t.Run("region 2 fails its bake: region 3 untouched, region 2 swapped back, region 1 kept", func(t *testing.T) {
		r, ro := failRegion2(t, "keep")
		if r.Code != 1 || ro.Failed != "demo-rg/demo-app-neu" || len(ro.Untouched) != 1 || ro.Untouched[0] != "demo-rg/demo-app-eus" || len(ro.Regions) != 2 {
			t.Fatalf("rollout: failed %q, untouched %v, %d regions run\n%s", ro.Failed, ro.Untouched, len(ro.Regions), r)
		}
		if !strings.Contains(r.Stderr, "region demo-rg/demo-app-neu failed") || ro.Regions[1].FailedStep != "watch" {
			t.Fatalf("the error names the region and the step:\n%s", r.Stderr)
		}
		if got := productionRelease(t, hc, emu, "demo-app"); got != ro.ReleaseID {
			t.Fatalf("region 1 (keep) serves %q, want the new %s", got, ro.ReleaseID)
		}
		if got := productionRelease(t, hc, emu, "demo-app-neu"); got != relA {
			t.Fatalf("region 2 serves %q after its failure, want %s", got, relA)
		}
		if got := productionRelease(t, hc, emu, "demo-app-eus"); got != relA {
			t.Fatalf("region 3 serves %q, want the untouched %s", got, relA)
		}
		emu.SetUnhealthyPath("demo-app-neu", "staging", "")
	})

	t.Run("with --on-wave-failure rollback region 1 is swapped back too", func(t *testing.T) {
		keptRelease := productionRelease(t, hc, emu, "demo-app")
		r, ro := failRegion2(t, "rollback", "--on-wave-failure", "rollback")
		if r.Code != 1 || len(ro.RolledBack) != 1 || ro.RolledBack[0] != "demo-rg/demo-app" {
			t.Fatalf("rolled back %v\n%s", ro.RolledBack, r)
		}
		if got := productionRelease(t, hc, emu, "demo-app"); got != keptRelease {
			t.Fatalf("region 1 serves %q after the rollback, want %s", got, keptRelease)
		}
		for _, app := range regions[1:] {
			if got := productionRelease(t, hc, emu, app); got != relA {
				t.Fatalf("%s serves %q, want %s", app, got, relA)
			}
		}
		emu.SetUnhealthyPath("demo-app-neu", "staging", "")
	})

	t.Run("each region leaves Front Door's rotation while it swaps", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "</h1>", " (rotated)</h1>")
		fd := emu.CDNURL("demo-fd", "demo-fd-ep")
		var visits []visit
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, _, _ := e2e.Get(c, fd+"/")
				visits = append(visits, visit{at: time.Now(), status: code})
				time.Sleep(5 * time.Millisecond)
			}
		}()
		since := time.Now()
		r := e2e.Main(ctx, base, "release", "--json", "--origin-rotation")
		close(stop)
		<-done
		if r.Code != 0 {
			t.Fatalf("rollout with origin rotation:\n%s", r)
		}
		ro := rollout(r)
		var changes []emulator.OriginChange
		for _, c := range emu.OriginChanges() {
			if c.At.After(since) {
				changes = append(changes, c)
			}
		}
		want := []string{"regions/weu false", "regions/weu true", "regions/neu false", "regions/neu true", "regions/eus false", "regions/eus true"}
		var got []string
		for _, c := range changes {
			got = append(got, fmt.Sprintf("%s %v", c.Origin, c.Enabled))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("origin changes %v, want %v", got, want)
		}
		for i, reg := range ro.Regions {
			var swap report.Step
			for _, st := range reg.Steps {
				if st.Name == "swap" {
					swap = st
				}
			}
			off, on := changes[2*i].At, changes[2*i+1].At
			if swap.Started.Before(off) || swap.Started.Add(swap.Duration).After(on) {
				t.Fatalf("%s swapped %s..%s outside its time out of rotation %s..%s", reg.App, swap.Started, swap.Started.Add(swap.Duration), off, on)
			}
			for _, rec := range emu.FrontDoorLog() {
				if rec.App == reg.App && rec.At.After(off) && rec.At.Before(on) {
					t.Fatalf("Front Door sent a request to %s at %s while its origin was out of rotation", reg.App, rec.At)
				}
			}
		}
		for _, v := range visits {
			if v.status != 200 {
				t.Fatalf("a visitor through Front Door got %d at %s", v.status, v.at)
			}
		}
		if len(visits) < 20 {
			t.Fatalf("only %d visits through Front Door", len(visits))
		}
		relA = ro.ReleaseID
	})

	t.Run("bad targets change nothing", func(t *testing.T) {
		for _, c := range []struct{ targets, says string }{
			{"demo-rg", "has no app"},
			{"demo-rg/demo-app/staging,demo-rg/demo-app/staging", "listed twice"},
			{"demo-rg/demo-app/production", "no deployment slot"},
			{"demo-rg/demo app/staging", "invalid app name"},
		} {
			r := e2e.Main(ctx, e2e.With(base, map[string]string{"DJDEPLOY_TARGETS": c.targets}), "release")
			if r.Code != 2 || !strings.Contains(r.Stderr, c.says) {
				t.Fatalf("targets %q: want exit 2 saying %q:\n%s", c.targets, c.says, r)
			}
		}
		r := e2e.Main(ctx, e2e.With(base, map[string]string{"DJDEPLOY_TARGETS": "demo-rg/demo-app-basic/staging"}), "release", "--strategy", "canary")
		if r.Code != 2 || !strings.Contains(r.Stderr, "no deployment slots") {
			t.Fatalf("a canary on a Basic plan:\n%s", r)
		}
		r = e2e.Main(ctx, e2e.With(base, map[string]string{"DJDEPLOY_CDN_PROFILE": "demo-cdn", "DJDEPLOY_CDN_ENDPOINT": "demo-cdn-ep"}), "release", "--origin-rotation")
		if r.Code != 2 || !strings.Contains(r.Stderr, "needs a Front Door profile") {
			t.Fatalf("--origin-rotation on a classic CDN profile:\n%s", r)
		}
	})
}

// startLoadOn is startLoad against another app's production host.
func startLoadOn(emu *emulator.Emulator, app string, paths ...string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			code, _, _, _ := e2e.Get(c, emu.ProductionURL(app)+paths[i%len(paths)])
			l.mu.Lock()
			l.visits = append(l.visits, visit{at: time.Now(), status: code})
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}
