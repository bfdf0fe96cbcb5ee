//go:build bench

// A 3-region canary release on the emulator, under steady traffic: how much
// time djdeploy adds to each canary step beyond the configured interval (the
// gap between one gate window's end and the next one's start: reading the
// gate's figures, writing the next traffic rule, on loopback), and how many
// requests each step sends to ARM and to the Application Insights query API.
// Goal: under a second per step.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/release"
)

func TestBenchCanaryThreeRegions(t *testing.T) {
	py := e2e.Require(t, "canary benchmark")
	regions := []string{"demo-app", "demo-app-neu", "demo-app-eus"}
	res := emulator.DefaultResources()
	for _, name := range regions[1:] {
		res.Apps = append(res.Apps, emulator.AppConfig{Name: name, Slots: []string{"staging"},
			Plan: emulator.PlanConfig{Name: name + "-plan", SKU: "P1v3", Capacity: 1}, PythonVersion: "3.12"})
	}
	emu, err := emulator.Start(context.Background(), emulator.Config{Resources: res, StartAzurite: true, Python: py, Workers: 1, RetryAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, app := range regions {
		for _, slot := range []string{"", "/slots/staging"} {
			setConnString(t, emu, app, slot)
		}
	}
	proj := e2e.Project(t, "site")
	env := e2e.With(e2e.Env(emu, py), map[string]string{"DJDEPLOY_PROJECT": proj, "DJDEPLOY_FIX_SETTINGS": "true",
		"DJDEPLOY_ACCESS_TOKEN": "", "AZURE_CLIENT_ID": emu.ClientID(), "AZURE_CLIENT_SECRET": emu.ClientSecret(),
		"DJDEPLOY_TARGETS": "demo-rg/demo-app/staging,demo-rg/demo-app-neu/staging,demo-rg/demo-app-eus/staging",
		"DJDEPLOY_APP":     "", "DJDEPLOY_RESOURCE_GROUP": ""})
	ctx := context.Background()
	if r := e2e.Main(ctx, env, "release"); r.Code != 0 {
		t.Fatalf("first rollout:\n%s", r)
	}

	// Steady traffic on every region's production host.
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 10 * time.Second}
		for i := 0; !stop.Load(); i++ {
			if resp, err := c.Get(emu.ProductionURL(regions[i%3]) + "/"); err == nil {
				resp.Body.Close()
			}
		}
	}()
	e2e.Edit(t, proj, "pages/templates/pages/home.html", "</h1>", " (bench)</h1>")
	interval := 3 * time.Second
	started := time.Now()
	r := e2e.Main(ctx, env, "release", "--json", "--strategy", "canary", "--canary-steps", "5,25,50",
		"--canary-interval", interval.String(), "--min-requests", "3", "--max-failure-rate", "5%")
	wall := time.Since(started)
	stop.Store(true)
	<-done
	if r.Code != 0 {
		t.Fatalf("canary rollout:\n%s", r)
	}
	var ro release.Rollout
	if _, err := e2e.DecodeResult(r.Stdout, &ro); err != nil {
		t.Fatal(err)
	}

	var gaps []time.Duration
	var armPerStep, queryPerStep []int
	for _, reg := range ro.Regions {
		var canaryStart time.Time
		for _, st := range reg.Steps {
			if st.Name == "canary" {
				canaryStart = st.Started
			}
		}
		prevEnd := time.Time{}
		for i, g := range reg.Gates {
			if g.Step != "canary" {
				continue
			}
			// Window k's extra windows (not enough evidence) are interval
			// too; what is left of [prevEnd, g.From) is djdeploy's.
			if i > 0 {
				gaps = append(gaps, g.From.Sub(prevEnd))
				armPerStep = append(armPerStep, emu.RequestsBetween("*", "/subscriptions/*", prevEnd, g.From))
				queryPerStep = append(queryPerStep, emu.RequestsBetween("*", "/v1/apps/*", prevEnd, g.From))
			} else {
				armPerStep = append(armPerStep, emu.RequestsBetween("*", "/subscriptions/*", canaryStart, g.From))
			}
			prevEnd = g.To
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	var sum time.Duration
	for _, g := range gaps {
		sum += g
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "3-region canary release (steps 5,25,50 × %s each), wall %s\n", interval, wall.Round(time.Millisecond))
	if len(gaps) > 0 {
		fmt.Fprintf(&b, "  time djdeploy adds between steps: mean %s, max %s over %d steps (goal: under 1s)\n",
			(sum / time.Duration(len(gaps))).Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond), len(gaps))
	}
	fmt.Fprintf(&b, "  ARM requests per step (first step includes applySlotConfig and warm-up reads): %v\n", armPerStep)
	fmt.Fprintf(&b, "  Application Insights queries per step: %v\n", queryPerStep)
	t.Log("\n" + b.String())
	if out := os.Getenv("DJDEPLOY_BENCH_OUT"); out != "" {
		os.WriteFile(out, b.Bytes(), 0o644)
	}
	if len(gaps) != 6 {
		t.Fatalf("measured %d step gaps, want 6 (2 per region): gates %v", len(gaps), ro.Regions)
	}
	if !strings.Contains(r.Stderr, "canary at 50%") {
		t.Fatal("no canary step ran")
	}
}

func setConnString(t *testing.T, emu *emulator.Emulator, app, slotPath string) {
	t.Helper()
	base := emu.ARMEndpoint() + "/subscriptions/" + emu.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/" + app + slotPath + "/config/appsettings"
	req, _ := http.NewRequest("POST", base+"/list?api-version=2023-12-01", nil)
	req.Header.Set("Authorization", "Bearer "+emu.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cur struct {
		Properties map[string]string `json:"properties"`
	}
	json.NewDecoder(resp.Body).Decode(&cur)
	resp.Body.Close()
	if cur.Properties == nil {
		cur.Properties = map[string]string{}
	}
	cur.Properties["APPLICATIONINSIGHTS_CONNECTION_STRING"] = emu.AppInsightsConnectionString(app)
	body, _ := json.Marshal(map[string]any{"properties": cur.Properties})
	req, _ = http.NewRequest("PUT", base+"?api-version=2023-12-01", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+emu.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("setting the connection string on %s%s: %v", app, slotPath, err)
	}
	resp.Body.Close()
}
