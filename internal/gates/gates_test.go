package gates

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/insights"
	"github.com/djdeploy/djdeploy/internal/problem"
)

func TestJudge(t *testing.T) {
	th := Thresholds{MaxFailureRate: 0.02, MaxP95: 500 * time.Millisecond, MinRequests: 50}
	for _, c := range []struct {
		name string
		m    Measurement
		want Outcome
		says string
	}{
		{"healthy", Measurement{Requests: 200, Failed: 2, P95: 100 * time.Millisecond}, Pass, "200 requests"},
		{"no traffic is never a pass", Measurement{}, Insufficient, "not enough evidence"},
		{"too little traffic", Measurement{Requests: 49}, Insufficient, "at least 50"},
		{"failures", Measurement{Requests: 100, Failed: 3, P95: time.Millisecond}, Fail, "3.0% is over the 2.0%"},
		{"slow", Measurement{Requests: 100, P95: 600 * time.Millisecond}, Fail, "p95 600ms is over the 500ms"},
		{"at the limits passes", Measurement{Requests: 50, Failed: 1, P95: 500 * time.Millisecond}, Pass, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.m, th)
			if v.Outcome != c.want || !strings.Contains(v.Reason, c.says) {
				t.Fatalf("Judge = %s (%s), want %s containing %q", v.Outcome, v.Reason, c.want, c.says)
			}
		})
	}
	// Zero MinRequests still needs one request.
	if v := Judge(Measurement{}, Thresholds{MaxFailureRate: 1}); v.Outcome != Insufficient {
		t.Fatalf("no requests with MinRequests 0: %s", v.Outcome)
	}
}

// fixed is a meter that replays measurements.
type fixed struct{ ms []Measurement }

func (f *fixed) Observe(context.Context, time.Duration) (Measurement, error) {
	m := f.ms[0]
	f.ms = f.ms[1:]
	return m, nil
}

func TestEvaluateGivesAQuietWindowOneMoreChance(t *testing.T) {
	th := Thresholds{MaxFailureRate: 0.05, MinRequests: 10}
	v, _ := Evaluate(context.Background(), &fixed{[]Measurement{{Requests: 4}, {Requests: 7}}}, time.Second, th)
	if v.Outcome != Pass || v.Measurement.Requests != 11 {
		t.Fatalf("4 then 7 requests: %s with %d", v.Outcome, v.Measurement.Requests)
	}
	v, _ = Evaluate(context.Background(), &fixed{[]Measurement{{}, {Requests: 3}}}, time.Second, th)
	if v.Outcome != Insufficient {
		t.Fatalf("0 then 3 requests: %s", v.Outcome)
	}
	m := &fixed{[]Measurement{{Requests: 20, Failed: 10}, {Requests: 100}}}
	if v, _ = Evaluate(context.Background(), m, time.Second, th); v.Outcome != Fail || len(m.ms) != 1 {
		t.Fatalf("a failing window is judged at once: %s, %d windows left", v.Outcome, len(m.ms))
	}
}

func startEmulator(t *testing.T) *emulator.Emulator {
	t.Helper()
	e, err := emulator.Start(context.Background(), emulator.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestProbesCountWhatTheHostAnswers(t *testing.T) {
	e := startEmulator(t)
	p := &Probes{URL: e.ProductionURL("demo-app") + "/", Every: 10 * time.Millisecond, Target: "production"}
	m, err := p.Observe(context.Background(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests < 5 || m.Failed != 0 || m.Source != "probes" {
		t.Fatalf("healthy host: %+v", m)
	}
	// Through production's host with the routing cookie: the slot's answers.
	e.SetUnhealthy("demo-app", "staging", true)
	p.Cookie = &http.Cookie{Name: "x-ms-routing-name", Value: "staging"}
	m, err = p.Observe(context.Background(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests < 5 || m.Failed != m.Requests {
		t.Fatalf("slot answering 503 through production's host: %+v", m)
	}
}

// scoped issues the emulator's tokens for the audience asked for.
type scoped struct{ e *emulator.Emulator }

func (s scoped) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := s.e.TokenFor(strings.TrimSuffix(o.Scopes[0], "/.default"))
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

func TestInsightsMeasuresOnlyTheSlotsTraffic(t *testing.T) {
	e := startEmulator(t)
	opts, err := azure.Config{ARMEndpoint: e.ARMEndpoint(), CAFile: e.CAFile()}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	c, err := insights.New(scoped{e}, opts, e.ARMEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	comp, err := c.GetComponent(context.Background(), e.AppInsightsID("demo-app"))
	if err != nil {
		t.Fatal(err)
	}
	if got := insights.AppIDFromConnectionString(e.AppInsightsConnectionString("demo-app")); got != comp.AppID {
		t.Fatalf("connection string's ApplicationId %q, component's AppId %q", got, comp.AppID)
	}
	e.SetUnhealthy("demo-app", "staging", true)

	// Visitors: 20 routed to staging (failing), 30 to production (fine),
	// sent while the meter's window is open.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		for i := range 50 {
			q := "self"
			if i%5 < 2 {
				q = "staging"
			}
			if resp, err := http.Get(e.ProductionURL("demo-app") + "/?x-ms-routing-name=" + q); err == nil {
				resp.Body.Close()
			}
		}
	}()
	g := &Insights{Client: c, AppID: comp.AppID, Role: "demo-app-staging"}
	m, err := g.Observe(context.Background(), 2*time.Second)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 20 || m.Failed != 20 || m.Source != "application insights" {
		t.Fatalf("staging's window: %+v (want 20 requests, 20 failed)", m)
	}
	if v := Judge(m, Thresholds{MaxFailureRate: 0.01, MinRequests: 10}); v.Outcome != Fail {
		t.Fatalf("verdict %s", v.Outcome)
	}

	// A wrong AppId is a failure that names the fix, not a pass.
	if _, err := c.Requests(context.Background(), "00000000-0000-0000-0000-000000000000", "x", time.Now().Add(-time.Minute), time.Now()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown AppId: %v", err)
	}
	if _, err := c.GetComponent(context.Background(), "/subscriptions/x/resourceGroups/y/providers/Microsoft.Web/sites/z"); err == nil {
		t.Fatal("a site id was taken as a component")
	}
}

func TestAnnotateWritesADeploymentAnnotation(t *testing.T) {
	e := startEmulator(t)
	opts, err := azure.Config{ARMEndpoint: e.ARMEndpoint(), CAFile: e.CAFile()}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	c, err := insights.New(scoped{e}, opts, e.ARMEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	err = c.Annotate(context.Background(), e.AppInsightsID("demo-app"), insights.Annotation{
		Name: "release 20261202-1", Time: time.Now(), Properties: map[string]string{"ReleaseId": "20261202-1", "Commit": "abc123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := e.Annotations("demo-app")
	if len(got) != 1 || got[0]["category"] != "Deployment" || got[0]["properties"].(map[string]any)["Commit"] != "abc123" {
		t.Fatalf("annotations: %v", got)
	}
	if err := c.Annotate(context.Background(), "/subscriptions/"+e.Subscription()+"/resourceGroups/demo-rg/providers/Microsoft.Insights/components/nope", insights.Annotation{Name: "x", Time: time.Now()}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing component: %v", err)
	} else if pe, ok := problem.As(err); !ok || !strings.Contains(pe.Fix, "resource id") {
		t.Fatalf("missing component: no fix naming the resource id: %v", err)
	}
}
