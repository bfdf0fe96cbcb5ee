package cdn

// End-to-end tests against internal/emulator's CDN and Front Door ARM.

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/problem"
)

var (
	emuOnce sync.Once
	emuInst *emulator.Emulator
	emuErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if emuInst != nil {
		emuInst.Close()
	}
	os.Exit(code)
}

// e2e needs no Python: purges touch only ARM.
func e2e(t *testing.T) (*emulator.Emulator, *Purger) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	emuOnce.Do(func() {
		emuInst, emuErr = emulator.Start(context.Background(), emulator.Config{RetryAfter: 1})
	})
	if emuErr != nil {
		t.Fatalf("starting the emulator: %v", emuErr)
	}
	emuInst.ResetRequests()
	t.Cleanup(emuInst.Faults().Clear)
	cfg := azure.Config{ARMEndpoint: emuInst.ARMEndpoint(), CAFile: emuInst.CAFile()}
	opts, err := cfg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(emuInst.Subscription(), azure.StaticToken(emuInst.Token()), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.PollFrequency = 50 * time.Millisecond
	return emuInst, p
}

func endpointState(emu *emulator.Emulator, profile, endpoint string) emulator.EndpointState {
	for _, e := range emu.State().CDN {
		if e.Profile == profile && e.Endpoint == endpoint {
			return e
		}
	}
	return emulator.EndpointState{}
}

func TestE2EPurgeBatches250Paths(t *testing.T) {
	emu, p := e2e(t)
	before := len(endpointState(emu, "demo-cdn", "demo-cdn-ep").Purges)
	res, err := p.Purge(context.Background(), Request{ResourceGroup: "demo-rg", Profile: "demo-cdn", Endpoint: "demo-cdn-ep", Paths: manyPaths(250)})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Kind != Classic || res.Requests != 3 || !res.Waited {
		t.Errorf("result = %+v", res)
	}
	if n := emu.Requests("POST", "*/endpoints/demo-cdn-ep/purge"); n != 3 {
		t.Errorf("purge requests = %d, want 3", n)
	}
	if emu.Requests("GET", "*operationresults*") == 0 {
		t.Error("the purge operations were not polled")
	}
	purges := endpointState(emu, "demo-cdn", "demo-cdn-ep").Purges[before:]
	total := 0
	for _, b := range purges {
		total += len(b)
	}
	if len(purges) != 3 || total != 250 {
		t.Errorf("emulator saw %d purges of %d paths", len(purges), total)
	}
}

func TestE2EFrontDoorPurgeWithDomains(t *testing.T) {
	emu, p := e2e(t)
	u, _ := url.Parse(emu.CDNURL("demo-fd", "demo-fd-ep"))
	res, err := p.Purge(context.Background(), Request{ResourceGroup: "demo-rg", Profile: "demo-fd", Endpoint: "demo-fd-ep",
		Paths: []string{"/static/css/site.css", "/static/js/*"}, Domains: []string{u.Host}})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Kind != FrontDoor || emu.Requests("POST", "*/afdEndpoints/demo-fd-ep/purge") != 1 {
		t.Errorf("result = %+v, requests = %d", res, emu.Requests("POST", "*/afdEndpoints/demo-fd-ep/purge"))
	}
	// A domain that is not the endpoint's is refused with a fix.
	_, err = p.Purge(context.Background(), Request{ResourceGroup: "demo-rg", Profile: "demo-fd", Endpoint: "demo-fd-ep",
		Paths: []string{"/a.css"}, Domains: []string{"elsewhere.example.com"}})
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.Fix, "domains") {
		t.Errorf("err = %v", err)
	}
}

func TestE2EPurgeThrottled(t *testing.T) {
	emu, p := e2e(t)
	emu.Faults().Add(emulator.Fault{Method: "POST", Path: "*/purge", Status: 429, RetryAfter: 1, Host: "arm"})
	if _, err := p.Purge(context.Background(), Request{ResourceGroup: "demo-rg", Profile: "demo-fd", Endpoint: "demo-fd-ep", Paths: []string{"/a.css"}}); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if n := emu.Requests("POST", "*/purge"); n != 2 {
		t.Errorf("purge requests = %d, want 2 (429 then the retry)", n)
	}
}

func TestE2EPurgeNoWait(t *testing.T) {
	emu, p := e2e(t)
	res, err := p.Purge(context.Background(), Request{ResourceGroup: "demo-rg", Profile: "demo-fd", Endpoint: "demo-fd-ep", Paths: []string{"/b.css"}, NoWait: true})
	if err != nil || res.Waited {
		t.Fatalf("Purge: %+v, %v", res, err)
	}
	if n := emu.Requests("GET", "*operationresults*"); n != 0 {
		t.Errorf("polled %d times with NoWait", n)
	}
}
