package emulator

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/cdn/armcdn/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		in   string
		want Fault
		err  bool
	}{
		{"POST */slotsswap=429,retry-after=1,count=2", Fault{Method: "POST", Path: "*/slotsswap", Status: 429, RetryAfter: 1, Count: 2}, false},
		{"/api/publish=drop", Fault{Path: "/api/publish", Drop: true}, false},
		{"*/purge=503,count=-1", Fault{Path: "*/purge", Status: 503, Count: -1}, false},
		{"GET */sites/*=delay=3s", Fault{Method: "GET", Path: "*/sites/*", Delay: 3 * time.Second}, false},
		{"*/purge=500,host=arm", Fault{Path: "*/purge", Status: 500, Host: "arm"}, false},
		{"*/purge", Fault{}, true},
		{"*/purge=42", Fault{}, true},
		{"*/purge=500,bogus=1", Fault{}, true},
		{"*/purge=count=2", Fault{}, true},
	}
	for _, tt := range tests {
		got, err := ParseFault(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestPurgeRules(t *testing.T) {
	paths := []string{"/static/app.css", "/static/app.js", "/static/img/logo.png", "/index.html", "/", "/Static/Case.css"}
	tests := []struct {
		afd   bool
		paths []string
		gone  []string
	}{
		{true, []string{"/*"}, paths},
		{true, []string{"/static/*"}, []string{"/static/app.css", "/static/app.js", "/static/img/logo.png", "/Static/Case.css"}},
		{true, []string{"/STATIC/APP.CSS"}, []string{"/static/app.css"}},
		{true, []string{"/static/app.css?v=2"}, []string{"/static/app.css"}},
		{true, []string{"/static/app"}, nil},
		{false, []string{"/static/app.css"}, []string{"/static/app.css"}},
		{false, []string{"/static/img/logo"}, []string{"/static/img/logo.png"}},
		{false, []string{"/STATIC/APP.CSS"}, nil},
		{false, []string{"/static/*"}, []string{"/static/app.css", "/static/app.js", "/static/img/logo.png"}},
		{false, []string{"/"}, []string{"/"}},
	}
	for _, tt := range tests {
		ep := &cdnEndpoint{profile: &profile{afd: tt.afd}, cache: map[string]*cached{}}
		for _, p := range paths {
			ep.cache[ep.cacheKey(p)] = &cached{}
		}
		before := map[string]bool{}
		for k := range ep.cache {
			before[k] = true
		}
		ep.evict(tt.paths)
		var gone []string
		for _, p := range paths {
			if _, ok := ep.cache[ep.cacheKey(p)]; !ok && before[ep.cacheKey(p)] {
				gone = append(gone, p)
			}
		}
		if strings.Join(gone, ",") != strings.Join(tt.gone, ",") {
			t.Errorf("afd=%v purge %v evicted %v, want %v", tt.afd, tt.paths, gone, tt.gone)
		}
	}
}

// TestFaults drives every request fault through the real SDK client.
func TestFaults(t *testing.T) {
	e, gate := gatedEmulator(t)
	openGate(t, gate)
	ctx := context.Background()
	c := webApps(t, e, staticCred(e.Token()))
	swap := func() error {
		p, err := c.BeginSwapSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.CsmSlotEntity{TargetSlot: to.Ptr("production"), PreserveVnet: to.Ptr(true)}, nil)
		if err != nil {
			return err
		}
		_, err = p.PollUntilDone(ctx, nil)
		return err
	}

	t.Run("429 with Retry-After is retried by the SDK", func(t *testing.T) {
		e.ResetRequests()
		e.Faults().Add(Fault{Method: "POST", Path: "*/slotsswap", Status: 429, RetryAfter: 1, Count: 1})
		if err := swap(); err != nil {
			t.Fatal(err)
		}
		if n := e.Requests("POST", "*/slotsswap"); n != 2 {
			t.Errorf("%d swap requests, want 2 (the 429, then the retry)", n)
		}
	})

	t.Run("409 is not retried", func(t *testing.T) {
		e.ResetRequests()
		e.Faults().Add(Fault{Method: "POST", Path: "*/slotsswap", Status: 409})
		err := swap()
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 409 {
			t.Fatalf("got %v", err)
		}
		if n := e.Requests("POST", "*/slotsswap"); n != 1 {
			t.Errorf("%d requests", n)
		}
	})

	for _, status := range []int{500, 503} {
		t.Run(http.StatusText(status)+" is retried", func(t *testing.T) {
			e.ResetRequests()
			e.Faults().Add(Fault{Method: "GET", Path: "*/sites/demo-app", Status: status, Count: 2})
			if _, err := c.Get(ctx, "demo-rg", "demo-app", nil); err != nil {
				t.Fatal(err)
			}
			if n := e.Requests("GET", "*/sites/demo-app"); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
		})
	}

	t.Run("every request fails until cleared", func(t *testing.T) {
		e.Faults().Add(Fault{Path: "*/sites/demo-app", Status: 500, Count: -1})
		_, err := c.Get(ctx, "demo-rg", "demo-app", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 500 {
			t.Fatalf("got %v", err)
		}
		e.Faults().Clear()
		if _, err := c.Get(ctx, "demo-rg", "demo-app", nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("dropped connection is retried", func(t *testing.T) {
		e.ResetRequests()
		e.Faults().Add(Fault{Method: "GET", Path: "*/sites/demo-app", Drop: true})
		if _, err := c.Get(ctx, "demo-rg", "demo-app", nil); err != nil {
			t.Fatal(err)
		}
		if n := e.Requests("GET", "*/sites/demo-app"); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})

	t.Run("dropped Kudu upload", func(t *testing.T) {
		e.Faults().Add(Fault{Method: "POST", Path: "/api/publish", Drop: true, Host: "scm"})
		req, _ := http.NewRequest("POST", e.SCMURL("demo-app", "staging")+"/api/publish?type=zip&async=true", strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+e.Token())
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("got a response (%d) from a dropped connection", resp.StatusCode)
		}
	})

	t.Run("delay holds the answer", func(t *testing.T) {
		e.Faults().Add(Fault{Method: "GET", Path: "*/sites/demo-app", Delay: time.Minute})
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.Get(short, "demo-rg", "demo-app", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the caller's deadline", err)
		}
	})

	t.Run("admin endpoint adds faults", func(t *testing.T) {
		e.ResetRequests()
		resp := do(t, "POST", e.AdminURL()+"/faults", e.AdminSecret(), []byte(`{"method":"GET","path":"*/sites/demo-app","status":503,"retryAfter":1}`), "Content-Type", "application/json")
		if readAll(t, resp); resp.StatusCode != 201 {
			t.Fatalf("admin: %d", resp.StatusCode)
		}
		if _, err := c.Get(ctx, "demo-rg", "demo-app", nil); err != nil {
			t.Fatal(err)
		}
		resp = do(t, "GET", e.AdminURL()+"/requests?method=GET&path=*/sites/demo-app", e.AdminSecret(), nil)
		if body := readAll(t, resp); !strings.Contains(body, `"count":2`) {
			t.Errorf("requests: %s", body)
		}
	})

	t.Run("build failure", func(t *testing.T) {
		if err := e.FailNextDeployment("demo-app", "staging", AtBuild); err != nil {
			t.Fatal(err)
		}
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "never"}))
		r := deploymentStatus(t, c, "staging", id)
		if *r.Properties.Status != armappservice.DeploymentBuildStatusBuildFailed || len(r.Properties.FailedInstancesLogs) == 0 {
			t.Errorf("status %s, logs %d", *r.Properties.Status, len(r.Properties.FailedInstancesLogs))
		}
		if st, _ := waitDeployment(t, e, "demo-app", "staging", id); st != kuduFailed {
			t.Errorf("kudu status %d", st)
		}
	})

	t.Run("missing requirement fails a remote build", func(t *testing.T) {
		_, err := c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{Properties: map[string]*string{
			"GATE": to.Ptr(gate), "SCM_DO_BUILD_DURING_DEPLOYMENT": to.Ptr("true")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "x", "requirements.txt": "# deps\nsurely-not-installed-djdeploy-pkg==1.0\n"}))
		r := deploymentStatus(t, c, "staging", id)
		if *r.Properties.Status != armappservice.DeploymentBuildStatusBuildFailed {
			t.Fatalf("status %s", *r.Properties.Status)
		}
		resp := do(t, "GET", e.SCMURL("demo-app", "staging")+"/api/deployments/"+id+"/log", e.Token(), nil)
		if body := readAll(t, resp); !strings.Contains(body, "No matching distribution found for surely-not-installed-djdeploy-pkg") {
			t.Errorf("log: %s", body)
		}
		// Installed requirements pass (the emulator's Python has pip's own
		// metadata at least through importlib for the stdlib-shipped ones
		// it finds; use one that every Debian python3 has installed).
		_, err = c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{Properties: map[string]*string{"GATE": to.Ptr(gate)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("runtime failure", func(t *testing.T) {
		if err := e.FailNextDeployment("demo-app", "staging", AtRuntime); err != nil {
			t.Fatal(err)
		}
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "broken"}))
		r := deploymentStatus(t, c, "staging", id)
		if *r.Properties.Status != armappservice.DeploymentBuildStatusRuntimeFailed {
			t.Fatalf("status %s", *r.Properties.Status)
		}
		var logs []string
		for _, l := range r.Properties.FailedInstancesLogs {
			logs = append(logs, *l)
		}
		if !strings.Contains(strings.Join(logs, "\n"), "made to fail at start") {
			t.Errorf("failedInstancesLogs %v", logs)
		}
		if code, _ := getText(t, e.SlotURL("demo-app", "staging")+"/"); code != 503 {
			t.Errorf("a slot whose release failed to start answers %d", code)
		}
		// A release that is not running never swaps into production.
		before := e.State()
		if err := swap(); err == nil {
			t.Fatal("swap of a failed release succeeded")
		}
		assertUnchanged(t, before, e.State())
	})

	t.Run("unhealthy slot blocks the swap", func(t *testing.T) {
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "sick"}))
		if r := deploymentStatus(t, c, "staging", id); *r.Properties.Status != armappservice.DeploymentBuildStatusRuntimeSuccessful {
			t.Fatalf("status %s", *r.Properties.Status)
		}
		_, err := c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{Properties: map[string]*string{
			"GATE": to.Ptr(gate), "WEBSITE_SWAP_WARMUP_PING_PATH": to.Ptr("/index.html"), "WEBSITE_SWAP_WARMUP_PING_STATUSES": to.Ptr("200")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitRunning(t, e, "staging")
		if err := e.SetUnhealthy("demo-app", "staging", true); err != nil {
			t.Fatal(err)
		}
		before := e.State()
		err = swap()
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.ErrorCode != "SwapWarmupFailed" || !strings.Contains(err.Error(), "returned 503") {
			t.Fatalf("got %v", err)
		}
		assertUnchanged(t, before, e.State())
		if err := e.SetUnhealthy("demo-app", "staging", false); err != nil {
			t.Fatal(err)
		}
		if err := swap(); err != nil {
			t.Fatalf("healthy again, the swap still fails: %v", err)
		}
		if _, page := getText(t, e.ProductionURL("demo-app")+"/index.html"); page != "sick" {
			t.Errorf("production serves %q", page)
		}
	})

	t.Run("unhealthy health path moves with the release", func(t *testing.T) {
		if err := e.SetUnhealthyPath("demo-app", "production", "/health"); err != nil {
			t.Fatal(err)
		}
		if code, _ := getText(t, e.ProductionURL("demo-app")+"/health"); code != 503 {
			t.Errorf("health path answers %d", code)
		}
		if code, _ := getText(t, e.ProductionURL("demo-app")+"/index.html"); code != 200 {
			t.Errorf("other paths answer %d", code)
		}
	})
}

func deploymentStatus(t *testing.T, c *armappservice.WebAppsClient, slot, id string) armappservice.WebAppsClientGetSlotSiteDeploymentStatusSlotResponse {
	t.Helper()
	p, err := c.BeginGetSlotSiteDeploymentStatusSlot(context.Background(), "demo-rg", "demo-app", slot, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.PollUntilDone(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRunning waits until a restart after a settings change has finished
// (the slot's release is running again).
func waitRunning(t *testing.T, e *Emulator, slot string) {
	t.Helper()
	for i := 0; i < 600; i++ {
		sl := e.findSlot("demo-app", slot)
		e.mu.Lock()
		starting := len(sl.starting)
		e.mu.Unlock()
		if starting == 0 && sl.inst.Load().running() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("slot %s never ran again", slot)
}

// assertUnchanged checks that a failed operation changed no slot.
func assertUnchanged(t *testing.T, before, after State) {
	t.Helper()
	for i, a := range before.Apps {
		for j, s := range a.Slots {
			s2 := after.Apps[i].Slots[j]
			if s.Release != s2.Release || len(s.AppSettings) != len(s2.AppSettings) {
				t.Errorf("slot %s changed: release %s -> %s", s.Name, s.Release, s2.Release)
			}
		}
	}
	if n := len(after.Swaps); n == 0 || after.Swaps[n-1].Succeeded {
		t.Errorf("the failed swap is not recorded as failed: %+v", after.Swaps)
	}
}

// TestCDNServesStaleUntilPurged runs the CDN hosts over a real Azurite.
func TestCDNServesStaleUntilPurged(t *testing.T) {
	az := testenv.Azurite(t)
	e, err := Start(context.Background(), Config{AzuriteConnectionString: az.ConnectionString(), Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	bc, err := azblob.NewClientFromConnectionString(e.StorageConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) {
		t.Helper()
		_, err := bc.UploadBuffer(ctx, "static", name, []byte(body), &azblob.UploadBufferOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	afdURL, cdnURL := e.CDNURL("demo-fd", "demo-fd-ep"), e.CDNURL("demo-cdn", "demo-cdn-ep")
	put("static/app.css", "v1")
	put("static/img/logo.png", "logo1")
	// Blob names are case-sensitive, so the cache is: Front Door once
	// served Case.css's content for case.css.
	put("static/Case.css", "upper")
	put("static/case.css", "lower")
	for _, u := range []string{afdURL, cdnURL} {
		for path, want := range map[string]string{"/static/Case.css": "upper", "/static/case.css": "lower", "/static/Case.css?again": "upper"} {
			if _, body := getText(t, u+path); body != want {
				t.Errorf("%s%s = %q, want %q", u, path, body, want)
			}
		}
	}
	for _, u := range []string{afdURL, cdnURL} {
		if code, body := getText(t, u+"/static/app.css"); code != 200 || body != "v1" {
			t.Fatalf("%s: %d %q", u, code, body)
		}
		getText(t, u+"/static/img/logo.png")
	}
	if code, _ := getText(t, afdURL+"/static/missing.css"); code != 404 {
		t.Errorf("missing blob: %d", code)
	}
	put("static/app.css", "v2")
	put("static/img/logo.png", "logo2")
	for _, u := range []string{afdURL, cdnURL} {
		resp, _ := http.Get(u + "/static/app.css")
		if body := readAll(t, resp); body != "v1" || resp.Header.Get("X-Cache") != "TCP_HIT" {
			t.Fatalf("%s before purge: %q %s (want the stale v1 from cache)", u, body, resp.Header.Get("X-Cache"))
		}
	}

	ac, _ := armcdn.NewAFDEndpointsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
	p, err := ac.BeginPurgeContent(ctx, "demo-rg", "demo-fd", "demo-fd-ep", armcdn.AfdPurgeParameters{ContentPaths: []*string{to.Ptr("/static/app.css")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, body := getText(t, afdURL+"/static/app.css"); body != "v2" {
		t.Errorf("Front Door after purge: %q", body)
	}
	// A name with "#" is cached and purged under its encoded path, the
	// form pages link ("/static/hash%23tag.css"), not cut at the "#".
	put("static/hash#tag.css", "old")
	if _, body := getText(t, afdURL+"/static/hash%23tag.css"); body != "old" {
		t.Fatalf("Front Door /static/hash%%23tag.css = %q", body)
	}
	put("static/hash#tag.css", "new")
	p, err = ac.BeginPurgeContent(ctx, "demo-rg", "demo-fd", "demo-fd-ep", armcdn.AfdPurgeParameters{ContentPaths: []*string{to.Ptr("/static/hash")}}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, nil)
	}
	if _, body := getText(t, afdURL+"/static/hash%23tag.css"); err != nil || body != "old" {
		t.Errorf("a purge of the cut path /static/hash emptied /static/hash%%23tag.css (%v): %q", err, body)
	}
	p, err = ac.BeginPurgeContent(ctx, "demo-rg", "demo-fd", "demo-fd-ep", armcdn.AfdPurgeParameters{ContentPaths: []*string{to.Ptr("/static/hash%23tag.css")}}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, nil)
	}
	if _, body := getText(t, afdURL+"/static/hash%23tag.css"); err != nil || body != "new" {
		t.Errorf("after purging /static/hash%%23tag.css (%v): %q", err, body)
	}
	if _, body := getText(t, afdURL+"/static/img/logo.png"); body != "logo1" {
		t.Errorf("Front Door purged a path it was not asked to: %q", body)
	}
	if _, body := getText(t, cdnURL+"/static/app.css"); body != "v1" {
		t.Errorf("a Front Door purge emptied the classic CDN too: %q", body)
	}

	ec, _ := armcdn.NewEndpointsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
	cp, err := ec.BeginPurgeContent(ctx, "demo-rg", "demo-cdn", "demo-cdn-ep", armcdn.PurgeParameters{ContentPaths: []*string{to.Ptr("/static/*")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/static/app.css", "/static/img/logo.png"} {
		if _, body := getText(t, cdnURL+path); body != "v2" && body != "logo2" {
			t.Errorf("classic CDN after /static/* purge: %s = %q", path, body)
		}
	}
}
