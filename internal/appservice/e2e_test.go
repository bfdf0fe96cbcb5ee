package appservice

// End-to-end tests against internal/emulator: real ARM and Kudu protocols,
// real gunicorn processes running a tiny Django app, fault injection.

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

const (
	emuApp  = "demo-app"
	emuRG   = "demo-rg"
	emuSlot = "staging"
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

// e2e returns the shared emulator and a client for it, with the emulator's
// faults cleared when the test ends.
func e2e(t *testing.T) (*emulator.Emulator, *Client, *bytes.Buffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	py := testenv.Python(t)
	emuOnce.Do(func() {
		emuInst, emuErr = emulator.Start(context.Background(), emulator.Config{Python: py, Workers: 1, RetryAfter: 1})
	})
	if emuErr != nil {
		t.Fatalf("starting the emulator: %v", emuErr)
	}
	t.Cleanup(func() {
		emuInst.Faults().Clear()
		emuInst.SetUnhealthy(emuApp, emuSlot, false)
		emuInst.SetUnhealthy(emuApp, Production, false)
		emuInst.FailNextDeployment(emuApp, emuSlot, emulator.NoFailure)
	})
	cfg := azure.Config{ARMEndpoint: emuInst.ARMEndpoint(), CAFile: emuInst.CAFile()}
	opts, err := cfg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry.RetryDelay = 10 * time.Millisecond
	hc, err := cfg.HTTPClient(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c, err := New(emuInst.Subscription(), azure.StaticToken(emuInst.Token()), opts, hc, &progress.Lines{W: &syncWriter{w: &out}})
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval = 50 * time.Millisecond
	c.MaxPollInterval = 250 * time.Millisecond
	return emuInst, c, &out
}

// djangoZip writes a tiny Django project whose pages name the release.
func djangoZip(t *testing.T, release string) string {
	t.Helper()
	files := map[string]string{
		"manage.py":          "import os, sys\nif __name__ == '__main__':\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n    from django.core.management import execute_from_command_line\n    execute_from_command_line(sys.argv)\n",
		"requirements.txt":   "Django>=3.2\ngunicorn\nuvicorn\n",
		"mysite/__init__.py": "",
		"mysite/settings.py": "SECRET_KEY = 'test-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'mysite.urls'\nINSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\nUSE_TZ = True\n",
		"mysite/asgi.py":     "import os\nfrom django.core.asgi import get_asgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_asgi_application()\n",
		"mysite/urls.py": fmt.Sprintf(`from django.http import HttpResponse
from django.urls import path
def home(request):
    return HttpResponse("release %s")
def health(request):
    r = HttpResponse("ok")
    r["X-Release-Id"] = %q
    return r
urlpatterns = [path("", home), path("healthz", health)]
`, release, release),
	}
	p := filepath.Join(t.TempDir(), "app.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func emuTarget(slot string) Target { return Target{ResourceGroup: emuRG, App: emuApp, Slot: slot} }

func deployOK(t *testing.T, c *Client, slot, release string) {
	t.Helper()
	if _, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(slot), Package: djangoZip(t, release), Timeout: 2 * time.Minute}); err != nil {
		t.Fatalf("deploying %s to %s: %v", release, slot, err)
	}
}

func TestE2EDeploy(t *testing.T) {
	emu, c, out := e2e(t)
	res, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(emuSlot), Package: djangoZip(t, "e2e-1"), Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("Deploy: %v\n%s", err, out)
	}
	if res.DeploymentID == "" || res.Status != "RuntimeSuccessful" {
		t.Errorf("result = %+v", res)
	}
	if code, body := get(t, emu.SlotURL(emuApp, emuSlot)); code != 200 || body != "release e2e-1" {
		t.Errorf("slot answers %d %q", code, body)
	}
}

func TestE2EDeployWaitsOutConflict(t *testing.T) {
	emu, c, out := e2e(t)
	emu.Faults().Add(emulator.Fault{Method: "POST", Path: "/api/publish", Status: 409, Count: 2, Host: "scm"})
	res, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(emuSlot), Package: djangoZip(t, "e2e-409"), Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("Deploy: %v\n%s", err, out)
	}
	if res.Conflicts != 2 || !strings.Contains(out.String(), "another deployment is in progress") {
		t.Errorf("conflicts = %d\n%s", res.Conflicts, out)
	}
	if _, body := get(t, emu.SlotURL(emuApp, emuSlot)); body != "release e2e-409" {
		t.Errorf("slot answers %q", body)
	}
}

func TestE2EDeployBuildFailureShowsLog(t *testing.T) {
	emu, c, out := e2e(t)
	if err := emu.FailNextDeployment(emuApp, emuSlot, emulator.AtBuild); err != nil {
		t.Fatal(err)
	}
	_, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(emuSlot), Package: djangoZip(t, "e2e-bad"), Timeout: 2 * time.Minute})
	var de *DeployError
	if !errors.As(err, &de) || de.Status != "BuildFailed" {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if len(de.LogTail) == 0 || !strings.Contains(out.String(), "deployment log") {
		t.Errorf("no deployment log shown:\n%s", out)
	}
}

func TestE2EDeployRuntimeFailure(t *testing.T) {
	emu, c, out := e2e(t)
	if err := emu.FailNextDeployment(emuApp, emuSlot, emulator.AtRuntime); err != nil {
		t.Fatal(err)
	}
	_, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(emuSlot), Package: djangoZip(t, "e2e-crash"), Timeout: 2 * time.Minute})
	var de *DeployError
	if !errors.As(err, &de) || de.Status != "RuntimeFailed" {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "emulator fault") {
		t.Errorf("the app's start-up output is not in the log tail:\n%s", out)
	}
}

func TestE2EDeployTimeout(t *testing.T) {
	emu, c, _ := e2e(t)
	// Kudu holds the upload longer than the deploy may take.
	emu.Faults().Add(emulator.Fault{Method: "POST", Path: "/api/publish", Delay: 10 * time.Second, Host: "scm"})
	before := len(slotState(t, emu).Deployments)
	_, err := c.Deploy(context.Background(), DeployOptions{Target: emuTarget(emuSlot), Package: djangoZip(t, "e2e-slow"), Timeout: 300 * time.Millisecond})
	p, ok := problem.As(err)
	if !ok || !strings.Contains(p.What, "did not finish within") || !strings.Contains(p.Fix, "deploy-timeout") {
		t.Fatalf("err = %v", err)
	}
	// The emulator still takes the upload when its delay ends, as Kudu
	// would: wait for that deployment to finish, or it lands in the slot
	// in the middle of the next test on this shared emulator.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ds := slotState(t, emu).Deployments
		if len(ds) > before && ds[len(ds)-1].Complete {
			return
		}
	}
}

// slotState is the emulator's view of the test slot.
func slotState(t *testing.T, emu *emulator.Emulator) emulator.SlotState {
	t.Helper()
	for _, a := range emu.State().Apps {
		for _, s := range a.Slots {
			if a.Name == emuApp && s.Name == emuSlot {
				return s
			}
		}
	}
	t.Fatal("slot not in emulator state")
	return emulator.SlotState{}
}

func TestE2EEnsureConfigFix(t *testing.T) {
	emu, c, _ := e2e(t)
	r := &Release{DependencyMode: "local", PythonVersion: "3.12", AppSettings: map[string]string{"DISABLE_COLLECTSTATIC": "true"}}
	r.StartupHint.ASGIModule = "mysite.asgi"
	o := ConfigOptions{Target: emuTarget(emuSlot), Release: r, StartupCommand: "auto", ExtraSettings: map[string]string{"DJDEPLOY_RELEASE_ID": "cfg-1"}}
	if _, err := c.EnsureConfig(context.Background(), o); problem.ExitCode(err) != problem.ExitUsage {
		t.Fatalf("without fix: err = %v", err)
	}
	o.Fix = true
	res, err := c.EnsureConfig(context.Background(), o)
	if err != nil || !res.Applied {
		t.Fatalf("with fix: %+v, %v", res, err)
	}
	var slot *emulator.SlotState
	for _, a := range emu.State().Apps {
		for i := range a.Slots {
			if a.Name == emuApp && a.Slots[i].Name == emuSlot {
				slot = &a.Slots[i]
			}
		}
	}
	if slot == nil {
		t.Fatal("slot not in emulator state")
	}
	if slot.AppSettings["DISABLE_COLLECTSTATIC"] != "true" || slot.AppSettings["SCM_DO_BUILD_DURING_DEPLOYMENT"] != "false" || slot.AppSettings["DJDEPLOY_RELEASE_ID"] != "cfg-1" {
		t.Errorf("app settings = %v", slot.AppSettings)
	}
	// P1v3: 2 vCPUs -> 5 workers.
	if !strings.Contains(slot.AppCommandLine, "--workers 5") || !strings.Contains(slot.AppCommandLine, "mysite.asgi") {
		t.Errorf("startup command = %q", slot.AppCommandLine)
	}
	// The command really starts the app.
	deployOK(t, c, emuSlot, "cfg-run")
	if _, body := get(t, emu.SlotURL(emuApp, emuSlot)); body != "release cfg-run" {
		t.Errorf("slot answers %q with the auto startup command", body)
	}
	// A second check finds nothing to do.
	o.Fix = false
	if res, err := c.EnsureConfig(context.Background(), o); err != nil || len(res.Changes) != 0 {
		t.Errorf("second check: %+v, %v", res, err)
	}
}

// prepareSwap puts release old in production and new in the slot.
func prepareSwap(t *testing.T, c *Client, old, new string) {
	t.Helper()
	deployOK(t, c, Production, old)
	deployOK(t, c, emuSlot, new)
}

func e2ePlan() SwapPlan {
	return SwapPlan{Swap: SwapSpec{Target: emuTarget(emuSlot), Timeout: 2 * time.Minute},
		WarmUp: HealthCheck{Path: "/healthz", Timeout: time.Minute}, Verify: HealthCheck{Path: "/healthz", Timeout: time.Minute}}
}

func TestE2ESwapWarmUpSucceedsLate(t *testing.T) {
	emu, c, out := e2e(t)
	prepareSwap(t, c, "sw-old", "sw-new")
	emu.SetUnhealthy(emuApp, emuSlot, true)
	emu.ResetRequests()
	go func() {
		// Heal the slot after it has been probed twice.
		for emu.Requests("GET", "/healthz") < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		emu.SetUnhealthy(emuApp, emuSlot, false)
	}()
	p := e2ePlan()
	p.Verify.ExpectRelease = "sw-new"
	rep, err := c.RunSwap(context.Background(), p)
	if err != nil {
		t.Fatalf("RunSwap: %v\n%s", err, out)
	}
	if rep.WarmUp.Attempts < 3 || !rep.Swapped || !rep.Verified {
		t.Errorf("report = %+v warm-up %+v", rep, rep.WarmUp)
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release sw-new" {
		t.Errorf("production answers %q", body)
	}
}

func TestE2ESwapNotDoneWhenWarmUpFails(t *testing.T) {
	emu, c, _ := e2e(t)
	prepareSwap(t, c, "wf-old", "wf-new")
	emu.SetUnhealthy(emuApp, emuSlot, true)
	emu.ResetRequests()
	p := e2ePlan()
	p.WarmUp.Timeout = 500 * time.Millisecond
	rep, err := c.RunSwap(context.Background(), p)
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "HTTP 503") || !strings.Contains(pe.What, "nothing was swapped") {
		t.Fatalf("err = %v", err)
	}
	if rep.Swapped || emu.Requests("POST", "*/slotsswap") != 0 {
		t.Errorf("a swap was requested: %+v", rep)
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release wf-old" {
		t.Errorf("production answers %q", body)
	}
}

func TestE2ESwapBackWhenVerificationFails(t *testing.T) {
	emu, c, _ := e2e(t)
	prepareSwap(t, c, "vf-old", "vf-new")
	// The new release answers / but not its health path; the mark moves
	// with it into production.
	if err := emu.SetUnhealthyPath(emuApp, emuSlot, "/healthz"); err != nil {
		t.Fatal(err)
	}
	emu.ResetRequests()
	p := e2ePlan()
	p.WarmUp.Path = "/"
	p.Verify.Timeout = 500 * time.Millisecond
	rep, err := c.RunSwap(context.Background(), p)
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "swapped back") {
		t.Fatalf("err = %v", err)
	}
	if !rep.Swapped || !rep.RolledBack || emu.Requests("POST", "*/slotsswap") != 2 {
		t.Errorf("report = %+v, swaps = %d", rep, emu.Requests("POST", "*/slotsswap"))
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release vf-old" {
		t.Errorf("production answers %q after the swap-back", body)
	}
	emu.SetUnhealthyPath(emuApp, emuSlot, "")
}

func TestE2EPreviewCancelComplete(t *testing.T) {
	emu, c, out := e2e(t)
	prepareSwap(t, c, "pv-old", "pv-new")
	emu.ResetRequests()
	p := e2ePlan()
	p.Action = "preview"
	if rep, err := c.RunSwap(context.Background(), p); err != nil || !rep.Previewed || rep.WarmUp == nil {
		t.Fatalf("preview: %+v, %v\n%s", rep, err, out)
	}
	p.Action = "cancel"
	if rep, err := c.RunSwap(context.Background(), p); err != nil || !rep.Cancelled {
		t.Fatalf("cancel: %+v, %v", rep, err)
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release pv-old" {
		t.Errorf("production changed by preview/cancel: %q", body)
	}
	p.Action = "preview"
	if _, err := c.RunSwap(context.Background(), p); err != nil {
		t.Fatalf("second preview: %v", err)
	}
	p.Action = "complete"
	if rep, err := c.RunSwap(context.Background(), p); err != nil || !rep.Swapped || !rep.Verified {
		t.Fatalf("complete: %+v, %v", rep, err)
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release pv-new" {
		t.Errorf("production answers %q after complete", body)
	}
	if emu.Requests("POST", "*/applySlotConfig") != 2 || emu.Requests("POST", "*/resetSlotConfig") != 1 {
		t.Errorf("apply = %d, reset = %d", emu.Requests("POST", "*/applySlotConfig"), emu.Requests("POST", "*/resetSlotConfig"))
	}
}

func TestE2ESwapThrottled(t *testing.T) {
	emu, c, out := e2e(t)
	prepareSwap(t, c, "th-old", "th-new")
	emu.ResetRequests()
	emu.Faults().Add(emulator.Fault{Method: "POST", Path: "*/slotsswap", Status: 429, RetryAfter: 1, Host: "arm"})
	rep, err := c.RunSwap(context.Background(), e2ePlan())
	if err != nil || !rep.Swapped {
		t.Fatalf("RunSwap: %+v, %v\n%s", rep, err, out)
	}
	if n := emu.Requests("POST", "*/slotsswap"); n != 2 {
		t.Errorf("swap requests = %d, want 2 (429 then the retry)", n)
	}
	if _, body := get(t, emu.ProductionURL(emuApp)); body != "release th-new" {
		t.Errorf("production answers %q", body)
	}
}

func TestE2EClientSecretCredential(t *testing.T) {
	emu, _, _ := e2e(t)
	cfg := azure.Config{ARMEndpoint: emu.ARMEndpoint(), AuthorityHost: emu.AuthorityHost(), CAFile: emu.CAFile()}
	cred, err := cfg.NewCredential(azure.CredentialOptions{TenantID: emu.Tenant(), ClientID: emu.ClientID(),
		Getenv: func(k string) string {
			if k == "AZURE_CLIENT_SECRET" {
				return emu.ClientSecret()
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := cfg.ClientOptions()
	c, err := New(emu.Subscription(), cred, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	site, err := c.GetSite(context.Background(), emuTarget(emuSlot))
	if err != nil || site.SCMHost == "" {
		t.Fatalf("GetSite with a client secret: %+v, %v", site, err)
	}
	// A wrong secret fails with what to check, and without the secret.
	bad, _ := cfg.NewCredential(azure.CredentialOptions{Kind: "client-secret", TenantID: emu.Tenant(), ClientID: emu.ClientID(),
		Getenv: func(string) string { return "wrong-secret-value" }})
	c2, _ := New(emu.Subscription(), bad, opts, nil, nil)
	_, err = c2.GetSite(context.Background(), emuTarget(emuSlot))
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "client-secret") || !strings.Contains(pe.Fix, "AADSTS7000215") || strings.Contains(err.Error()+pe.Fix, "wrong-secret-value") {
		t.Errorf("err = %v (fix %q)", err, pe.Fix)
	}
}
