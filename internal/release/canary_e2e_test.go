package release_test

// End-to-end tests of progressive delivery (--strategy canary, --watch,
// release annotations) through the emulator, with a load generator sending
// steady traffic to production's host as visitors would (each request a new
// visitor, without the routing cookie), and what production served checked
// over HTTP.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
)

var pageRelease = regexp.MustCompile(`<code id="release-id">([^<]*)</code>`)

// visit is one load-generator request: when, which release answered (""
// for an error page), the status.
type visit struct {
	at      time.Time
	release string
	status  int
}

// load sends requests to production's home page until stopped.
type load struct {
	mu     sync.Mutex
	visits []visit
	stop   chan struct{}
	done   chan struct{}
}

func startLoad(emu *emulator.Emulator, paths ...string) *load {
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	// No cookie jar: every request is a new visitor, as the share of a
	// traffic rule applies to visitors without a routing cookie.
	c := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			v := visit{at: time.Now()}
			code, _, body, err := e2e.Get(c, emu.ProductionURL(app)+paths[i%len(paths)])
			v.status = code
			if err == nil {
				if m := pageRelease.FindStringSubmatch(body); m != nil && code == 200 {
					v.release = m[1]
				}
			}
			l.mu.Lock()
			l.visits = append(l.visits, v)
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *load) Stop() []visit {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]visit(nil), l.visits...)
}

// within counts the visits in [from, to) and those that rel answered, and
// those that were errors.
func within(vs []visit, from, to time.Time, rel string) (n, of, errs int) {
	for _, v := range vs {
		if v.at.Before(from) || !v.at.Before(to) {
			continue
		}
		n++
		if v.release == rel {
			of++
		}
		if v.status >= 500 || v.status == 0 {
			errs++
		}
	}
	return
}

// tolerance is how far an observed share may stray from p over n visits:
// four standard deviations of the binomial, plus 2 points for the visits
// in flight when the rule changed.
func tolerance(p float64, n int) float64 {
	return 4*math.Sqrt(p*(1-p)/float64(max(n, 1))) + 0.02
}

func trafficRules(t *testing.T, emu *emulator.Emulator) string {
	t.Helper()
	req, _ := http.NewRequest("GET", emu.ARMEndpoint()+"/subscriptions/"+emu.Subscription()+"/resourceGroups/demo-rg/providers/Microsoft.Web/sites/"+app+"/config/web?api-version=2023-12-01", nil)
	req.Header.Set("Authorization", "Bearer "+emu.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Properties struct {
			Experiments struct {
				RampUpRules []map[string]any `json:"rampUpRules"`
			} `json:"experiments"`
		} `json:"properties"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, r := range body.Properties.Experiments.RampUpRules {
		parts = append(parts, fmt.Sprintf("%v:%v", r["name"], r["reroutePercentage"]))
	}
	return strings.Join(parts, ",")
}

func releaseJSON(t *testing.T, r e2e.Result) *report.Release {
	t.Helper()
	var out report.Release
	if ok, err := e2e.DecodeResult(r.Stdout, &out); err != nil || !ok {
		t.Fatalf("release --json printed no report: %v\n%s", err, r)
	}
	return &out
}

func TestCanaryReleases(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	proj := e2e.Project(t, "site")
	// A client secret, not the emulator's ready ARM token: the gates need
	// tokens for Application Insights' query API too.
	base := e2e.With(h.env, map[string]string{"DJDEPLOY_PROJECT": proj, "DJDEPLOY_FIX_SETTINGS": "true", "GITHUB_SHA": "c0ffee",
		"DJDEPLOY_ACCESS_TOKEN": "", "AZURE_CLIENT_ID": h.emu.ClientID(), "AZURE_CLIENT_SECRET": h.emu.ClientSecret()})
	aiID := h.emu.AppInsightsID(app)
	canary := func(extra ...string) []string {
		return append([]string{"release", "--json", "--strategy", "canary", "--app-insights", aiID, "--min-requests", "3", "--max-failure-rate", "5%"}, extra...)
	}

	first := e2e.Main(ctx, base, "release", "--json", "--app-insights", aiID)
	if first.Code != 0 {
		t.Fatalf("first release:\n%s", first)
	}
	relA := releaseJSON(t, first).ReleaseID
	if anns := h.emu.Annotations(app); len(anns) != 1 || !strings.Contains(fmt.Sprint(anns[0]["name"]), relA) ||
		anns[0]["properties"].(map[string]any)["Commit"] != "c0ffee" || anns[0]["category"] != "Deployment" {
		t.Fatalf("a release writes one Deployment annotation with its id and commit: %v", anns)
	}

	t.Run("promotes through 5, 25, 50 to a swap, each share as the rule says", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "</h1>", " (canary)</h1>")
		l := startLoad(h.emu)
		res := e2e.Main(ctx, base, canary("--canary-steps", "5,25,50", "--canary-interval", "4s")...)
		visits := l.Stop()
		if res.Code != 0 {
			t.Fatalf("canary release:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if rep.Strategy != "canary" || len(rep.Gates) != 3 {
			t.Fatalf("report: strategy %q, gates %+v", rep.Strategy, rep.Gates)
		}
		for i, want := range []float64{5, 25, 50} {
			g := rep.Gates[i]
			if g.Percent != want || g.Outcome != "pass" || g.Source != "application insights" || g.Requests < 3 {
				t.Fatalf("gate %d: %+v", i, g)
			}
			n, of, errs := within(visits, g.From, g.To, rep.ReleaseID)
			share := float64(of) / float64(max(n, 1))
			if n < 20 || math.Abs(share-want/100) > tolerance(want/100, n) || errs > 0 {
				t.Fatalf("at %g%%: the new release answered %d of %d visitors (%.1f%%), %d errors", want, of, n, 100*share, errs)
			}
			t.Logf("at %g%%: new release answered %d of %d visitors (%.1f%%)", want, of, n, 100*share)
		}
		page, err := e2e.Production(h.http, h.emu, app)
		if err != nil || page.Release != rep.ReleaseID || !strings.Contains(page.Body, "(canary)") {
			t.Fatalf("after the canary, production serves %q (want %s): %v", page.Release, rep.ReleaseID, err)
		}
		if r := trafficRules(t, h.emu); r != "" {
			t.Fatalf("traffic rules left after the swap: %s", r)
		}
		relA = rep.ReleaseID
	})

	t.Run("aborts at 25% when the new release fails, production untouched", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", " (canary)</h1>", " (broken)</h1>")
		l := startLoad(h.emu)
		// The new release turns bad once it has passed 5%: from the 25% step
		// every request it answers is a 503.
		broke := make(chan struct{})
		go func() {
			defer close(broke)
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if trafficRules(t, h.emu) == "staging:25" {
					h.emu.SetUnhealthy(app, slot, true)
					return
				}
			}
		}()
		res := e2e.Main(ctx, base, canary("--canary-steps", "5,25,50", "--canary-interval", "3s")...)
		<-broke
		visits := l.Stop()
		h.emu.SetUnhealthy(app, slot, false)
		if res.Code != 1 || !strings.Contains(res.Stderr, "canary at 25%") || !strings.Contains(res.Stderr, "failure rate") {
			t.Fatalf("a failing canary must fail the release at 25%%:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if len(rep.Gates) != 2 || rep.Gates[0].Outcome != "pass" || rep.Gates[1].Outcome != "fail" || rep.FailedStep != "canary" || rep.Live {
			t.Fatalf("report: failed step %q, live %v, gates %+v", rep.FailedStep, rep.Live, rep.Gates)
		}
		g := rep.Gates[1]
		n, _, errs := within(visits, g.From, g.To, "")
		if share := float64(errs) / float64(max(n, 1)); share > 0.25+tolerance(0.25, n) {
			t.Fatalf("during the 25%% step %d of %d visitors (%.1f%%) got errors: more than the rule's share", errs, n, 100*share)
		}
		page, err := e2e.Production(h.http, h.emu, app)
		if err != nil || page.Release != relA {
			t.Fatalf("after the abort production serves %q, want %s: %v", page.Release, relA, err)
		}
		if r := trafficRules(t, h.emu); r != "" {
			t.Fatalf("traffic rules left after the abort: %s", r)
		}
		var aborted bool
		for _, a := range h.emu.Annotations(app) {
			aborted = aborted || strings.Contains(fmt.Sprint(a["name"]), "canary aborted")
		}
		if !aborted {
			t.Fatalf("no 'canary aborted' annotation: %v", h.emu.Annotations(app))
		}
	})

	t.Run("too little traffic is not enough evidence, never a pass", func(t *testing.T) {
		res := e2e.Main(ctx, base, canary("--canary-steps", "10", "--canary-interval", "2s")...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "not enough evidence") {
			t.Fatalf("a canary without traffic must fail:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if len(rep.Gates) != 1 || rep.Gates[0].Outcome != "not enough evidence" || rep.Gates[0].To.Sub(rep.Gates[0].From) < 4*time.Second {
			t.Fatalf("the gate waits a second window before failing: %+v", rep.Gates)
		}
		if page, err := e2e.Production(h.http, h.emu, app); err != nil || page.Release != relA {
			t.Fatalf("production serves %q, want %s: %v", page.Release, relA, err)
		}
	})

	t.Run("the watch swaps back on a breach and annotates it", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", " (broken)</h1>", " (watched)</h1>")
		// Half the visitors ask for /healthz. Once production serves the new
		// release, /healthz fails there (the swap's own verification of "/"
		// passes): only the watch, judging all of production's traffic, can
		// see it.
		l := startLoad(h.emu, "/", "/healthz")
		go func() {
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if p, err := e2e.Production(h.http, h.emu, app); err == nil && strings.Contains(p.Body, "(watched)") {
					h.emu.SetUnhealthyPath(app, "production", "/healthz")
					return
				}
			}
		}()
		res := e2e.Main(ctx, base, "release", "--json", "--app-insights", aiID, "--health-path", "/", "--watch", "20s", "--min-requests", "3", "--max-failure-rate", "5%")
		visits := l.Stop()
		if res.Code != 1 || !strings.Contains(res.Stderr, "swapped back") {
			t.Fatalf("a breach during the watch must fail the release and swap back:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if rep.FailedStep != "watch" || rep.Live || len(rep.Gates) != 1 || rep.Gates[0].Outcome != "fail" {
			t.Fatalf("report: failed step %q, live %v, gates %+v", rep.FailedStep, rep.Live, rep.Gates)
		}
		// The breach was caught within a few short windows, not at the end.
		if d := rep.Gates[0].To.Sub(rep.Gates[0].From); d >= 20*time.Second {
			t.Fatalf("the watch judged %s before swapping back", d)
		}
		page, err := e2e.Production(h.http, h.emu, app)
		if err != nil || page.Release != relA {
			t.Fatalf("after the swap back production serves %q, want %s: %v", page.Release, relA, err)
		}
		if len(visits) == 0 {
			t.Fatal("no visits")
		}
		var rolled bool
		for _, a := range h.emu.Annotations(app) {
			rolled = rolled || strings.Contains(fmt.Sprint(a["name"]), "rolled back by watch")
		}
		if !rolled {
			t.Fatalf("no 'rolled back by watch' annotation: %v", h.emu.Annotations(app))
		}
	})

	t.Run("without Application Insights the gates judge djdeploy's own probes, and say so", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", " (watched)</h1>", " (probed)</h1>")
		res := e2e.Main(ctx, base, "release", "--json", "--strategy", "canary", "--canary-steps", "50", "--canary-interval", "2s", "--min-requests", "3")
		if res.Code != 0 || !strings.Contains(res.Stderr, "djdeploy's own probes") {
			t.Fatalf("canary on probes:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if len(rep.Gates) != 1 || rep.Gates[0].Source != "probes" || rep.Gates[0].Requests < 3 || rep.Gates[0].Failed != 0 {
			t.Fatalf("gates: %+v", rep.Gates)
		}
		page, err := e2e.Production(h.http, h.emu, app)
		if err != nil || page.Release != rep.ReleaseID {
			t.Fatalf("production serves %q, want %s: %v", page.Release, rep.ReleaseID, err)
		}
		relA = rep.ReleaseID
	})

	t.Run("a runner killed mid-canary resumes at the next step", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "djdeploy")
		if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(e2e.Root(t), "cmd", "djdeploy")).CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		e2e.Edit(t, proj, "pages/templates/pages/home.html", " (probed)</h1>", " (resumed)</h1>")
		l := startLoad(h.emu)
		defer l.Stop()
		args := canary("--canary-steps", "5,25,50", "--canary-interval", "3s")
		cmd, stderr := startBinary(t, bin, base, args...)
		killed := false
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline) && !killed; time.Sleep(100 * time.Millisecond) {
			if trafficRules(t, h.emu) == "staging:25" {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("the canary never reached 25%%:\n%s", stderr.String())
		}
		// status shows the canary the dead runner left: 25% of visitors on
		// the slot, the gate passed at 5% (issue 16).
		sr := e2e.Main(ctx, base, "status", "--json")
		var st release.Status
		if ok, err := e2e.DecodeResult(sr.Stdout, &st); sr.Code != 0 || !ok || err != nil {
			t.Fatalf("status mid-canary: %v\n%s", err, sr)
		}
		if st.Canary == nil || st.Canary.Slot != "staging" || st.Canary.Percent != 25 || st.Canary.PassedPercent != 5 {
			t.Errorf("status mid-canary: canary %+v, slots %+v", st.Canary, st.Slots)
		}
		// The dead runner's lock lease lapses within a minute; the re-run
		// waits for it, then resumes after 5%.
		res := e2e.Main(ctx, base, args...)
		if res.Code != 0 || !strings.Contains(res.Stderr, "resuming after 5%") {
			t.Fatalf("re-run after the kill:\n%s", res)
		}
		rep := releaseJSON(t, res)
		if len(rep.Gates) != 3 || rep.Gates[0].Reason != "passed in an earlier run" || rep.Gates[1].Requests == 0 {
			t.Fatalf("gates after resuming: %+v", rep.Gates)
		}
		page, err := e2e.Production(h.http, h.emu, app)
		if err != nil || page.Release != rep.ReleaseID || !strings.Contains(page.Body, "(resumed)") {
			t.Fatalf("production serves %q, want %s: %v", page.Release, rep.ReleaseID, err)
		}
		if r := trafficRules(t, h.emu); r != "" {
			t.Fatalf("traffic rules left: %s", r)
		}
		relA = rep.ReleaseID
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			says string
		}{
			{[]string{"--canary-steps", "50,25"}, "larger than the one before"},
			{[]string{"--canary-steps", "5,100"}, "below 100"},
			{[]string{"--canary-steps", "5,x"}, "not a number"},
			{[]string{"--canary-interval", "0s"}, "canary-interval"},
			{[]string{"--max-failure-rate", "2"}, "percentage"},
			{[]string{"--app-insights", "/subscriptions/" + h.emu.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Insights/components/nope"}, "does not exist"},
		} {
			before := len(h.emu.Annotations(app))
			args := append([]string{"release", "--strategy", "canary"}, c.args...)
			res := e2e.Main(ctx, base, args...)
			if res.Code != 2 || !strings.Contains(res.Stderr, c.says) || strings.Contains(res.Stderr, "goroutine") {
				t.Fatalf("%v: want exit 2 saying %q:\n%s", c.args, c.says, res)
			}
			if got := len(h.emu.Annotations(app)); got != before {
				t.Fatalf("%v: a refused release wrote an annotation", c.args)
			}
		}
		if page, err := e2e.Production(h.http, h.emu, app); err != nil || page.Release != relA {
			t.Fatalf("production serves %q, want %s: %v", page.Release, relA, err)
		}
	})
}
