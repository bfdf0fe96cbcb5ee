package conformance

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// The apps: one per group of cases, so cases run in parallel without
// stepping on each other's slots.
const (
	rg        = "conf-rg"
	appDeploy = "conf-deploy" // az webapp deploy, log, swap actions
	appConfig = "conf-config" // appsettings, config set, restart, update
	appSDK    = "conf-sdk"    // the Python SDK's pollers
)

type suite struct {
	emu *emulator.Emulator
	bin string // the conformance venv's bin
	// loggedIn is an AZURE_CONFIG_DIR signed in with the client secret;
	// each case works on its own copy.
	loggedIn string
	// oidc is the workload identity issuer (GitHub's stand-in) whose
	// tokens the emulator's federated credential accepts.
	oidc *oidcIssuer
	err  error
}

var (
	once   sync.Once
	shared suite
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.emu != nil {
		shared.emu.Close()
	}
	if shared.oidc != nil {
		shared.oidc.srv.Close()
	}
	if shared.loggedIn != "" {
		os.RemoveAll(shared.loggedIn)
	}
	os.Exit(code)
}

// setup starts one emulator (with Azurite, for the CDN cases) and signs az
// in once; a component that is missing skips locally and fails in CI.
func setup(t *testing.T) *suite {
	t.Helper()
	bin := testenv.Conformance(t)
	py := testenv.Python(t)
	if _, err := azurite.Find(); err != nil {
		testenv.Missing(t, "azurite", err.Error())
	}
	once.Do(func() {
		shared.bin = bin
		res := &emulator.Resources{
			ResourceGroup: rg,
			Apps: []emulator.AppConfig{
				{Name: appDeploy, Slots: []string{"staging"}, Plan: emulator.PlanConfig{Name: "conf-plan", SKU: "P1v3"}},
				{Name: appConfig, Slots: []string{"staging"}, Plan: emulator.PlanConfig{Name: "conf-plan", SKU: "P1v3"}},
				{Name: appSDK, Slots: []string{"staging"}, Plan: emulator.PlanConfig{Name: "conf-plan", SKU: "P1v3"}},
			},
			CDN: []emulator.ProfileConfig{
				{Name: "conf-fd", SKU: "Standard_AzureFrontDoor", Endpoints: []emulator.EndpointConfig{{Name: "conf-fd-ep"}}},
				{Name: "conf-cdn", SKU: "Standard_Microsoft", Endpoints: []emulator.EndpointConfig{{Name: "conf-cdn-ep"}}},
			},
		}
		if shared.oidc, shared.err = newOIDCIssuer(); shared.err != nil {
			return
		}
		fed := []emulator.FederatedCredential{{Issuer: shared.oidc.srv.URL, Subject: githubSubject}}
		shared.emu, shared.err = emulator.Start(context.Background(), emulator.Config{Resources: res, Python: py, StartAzurite: true, FederatedCredentials: fed, Log: testLog{}})
		if shared.err != nil {
			return
		}
		dir, err := os.MkdirTemp("", "djdeploy-az-")
		if err != nil {
			shared.err = err
			return
		}
		shared.loggedIn = dir
		e := shared.emu
		for _, args := range [][]string{
			{"cloud", "register", "--name", "DjdeployEmulator", "--endpoint-resource-manager", e.ARMTLSEndpoint()},
			{"cloud", "set", "--name", "DjdeployEmulator"},
			{"login", "--service-principal", "--username", e.ClientID(), "--password", e.ClientSecret(), "--tenant", e.Tenant()},
		} {
			if out, err := shared.azIn(dir, args...); err != nil {
				shared.err = fmt.Errorf("az %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("setting up the conformance suite: %v", shared.err)
	}
	return &shared
}

type testLog struct{}

func (testLog) Write(p []byte) (int, error) {
	if os.Getenv("EMULATOR_LOG") != "" {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// clientEnv is the environment Microsoft's clients run with: the
// emulator's CA trusted (REQUESTS_CA_BUNDLE), MSAL's instance discovery off
// (it asks login.microsoftonline.com about the authority, as for Azure
// Stack), no telemetry, no update checks.
func (s *suite) clientEnv(configDir string) []string {
	env := []string{
		"PATH=" + s.bin + ":/usr/bin:/bin",
		"HOME=" + configDir,
		"AZURE_CONFIG_DIR=" + configDir,
		"REQUESTS_CA_BUNDLE=" + s.emu.CAFile(),
		"AZURE_CORE_INSTANCE_DISCOVERY=false",
		"AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_ONLY_SHOW_ERRORS=true",
		"AZURE_CORE_NO_COLOR=true",
		"AZURE_CORE_SURVEY_MESSAGE=false",
		"PYTHONWARNINGS=ignore",
	}
	return env
}

func (s *suite) azIn(configDir string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "az"), args...)
	cmd.Env = s.clientEnv(configDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// configDir is this test's own copy of the signed-in AZURE_CONFIG_DIR.
func (s *suite) configDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(s.loggedIn)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// az runs az in dir and fails the test unless it exits 0; it returns
// stdout+stderr.
func (s *suite) az(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := s.azIn(dir, args...)
	if err != nil {
		t.Fatalf("az %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// azJSON runs az and decodes its JSON output into v.
func (s *suite) azJSON(t *testing.T, dir string, v any, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, "az"), append(args, "--output", "json")...)
	cmd.Env = s.clientEnv(dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("az %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("az %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// python runs a script with the conformance venv's interpreter, env
// extended by extra, and fails the test unless it exits 0.
func (s *suite) python(t *testing.T, script string, extra ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "case.py")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "python"), p)
	cmd.Env = append(s.clientEnv(t.TempDir()), extra...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python SDK case: %v\n%s", err, out)
	}
	return string(out)
}

// appZip is a Django project whose home page shows its release, its slot's
// GREETING and STARTUP_MARK (set by a startup command) from the running
// process's environment.
func appZip(t *testing.T, release string) string {
	t.Helper()
	files := map[string]string{
		"manage.py":          "import os, sys\nif __name__ == '__main__':\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n    from django.core.management import execute_from_command_line\n    execute_from_command_line(sys.argv)\n",
		"mysite/__init__.py": "",
		"mysite/settings.py": "SECRET_KEY = 'conformance-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'mysite.urls'\nINSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\n",
		"mysite/asgi.py":     "import os\nfrom django.core.asgi import get_asgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_asgi_application()\n",
		"mysite/wsgi.py":     "import os\nfrom django.core.wsgi import get_wsgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_wsgi_application()\n",
		"mysite/urls.py": fmt.Sprintf(`import os
from django.http import HttpResponse
from django.urls import path
def home(request):
    return HttpResponse("release=%s greeting=" + os.environ.get("GREETING", "") + " mark=" + os.environ.get("STARTUP_MARK", ""))
def pid(request):
    return HttpResponse(str(os.getpid()))
urlpatterns = [path("", home), path("pid", pid)]
`, release),
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
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
	p := filepath.Join(t.TempDir(), release+".zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serves waits until the slot's URL answers want (a restart after a
// settings change is asynchronous on App Service too) and fails with what
// it served instead.
func (s *suite) serves(t *testing.T, app, slot, want string) {
	t.Helper()
	url := s.emu.SlotURL(app, slot) + "/"
	var got string
	for i := 0; i < 600; i++ {
		got = get(t, url)
		if got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/%s serves %q, want %q", app, slot, got, want)
}

// servesNow checks the slot's answer once: for effects the client's
// operation promised were done when it returned.
func (s *suite) servesNow(t *testing.T, app, slot, want string) {
	t.Helper()
	if got := get(t, s.emu.SlotURL(app, slot)+"/"); got != want {
		t.Errorf("%s/%s serves %q right after the operation, want %q", app, slot, got, want)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func sleep() { time.Sleep(100 * time.Millisecond) }

// federatedAssertion is a workload identity token as GitHub Actions would
// issue for this repository's main branch.
func federatedAssertion(t *testing.T, s *suite) string {
	t.Helper()
	return fakeGitHubToken(t, s)
}
