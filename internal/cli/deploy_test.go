package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

const dbSecret = "db-password-Zq7vK2-never-print"

func runAzureCmd(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code = Main(context.Background(), args, IO{In: strings.NewReader(stdin), Out: &out, Err: &errb}, getenv)
	return code, out.String(), errb.String()
}

// releaseDir writes app.zip (a tiny Django app that names its release)
// and release.json beside it, as 'djdeploy build' would.
func releaseDir(t *testing.T, release string, appSettings map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"manage.py":          "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\nfrom django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
		"requirements.txt":   "Django>=3.2\n",
		"mysite/__init__.py": "",
		"mysite/settings.py": "SECRET_KEY = 'test-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'mysite.urls'\nINSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\n",
		"mysite/asgi.py":     "import os\nfrom django.core.asgi import get_asgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_asgi_application()\n",
		"mysite/urls.py": fmt.Sprintf(`from django.http import HttpResponse
from django.urls import path
def health(request):
    return HttpResponse("ok release=%s")
urlpatterns = [path("", health), path("healthz", health)]
`, release),
	}
	f, err := os.Create(filepath.Join(dir, "app.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		w, _ := zw.Create(name)
		io.WriteString(w, body)
	}
	zw.Close()
	f.Close()
	rel := map[string]any{"dependency_mode": "local", "python_version": "3.12", "app_settings": appSettings,
		"startup_hint": map[string]any{"asgi_module": "mysite.asgi", "pythonpath": ""}, "release_id": release}
	b, _ := json.Marshal(rel)
	if err := os.WriteFile(filepath.Join(dir, "release.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "app.zip")
}

func fakeJWT(sub string) string {
	enc := base64.RawURLEncoding
	// The emulator's authority, like Entra, refuses an assertion that is
	// expired or not for the token exchange audience.
	claims := fmt.Sprintf(`{"sub":%q,"aud":"api://AzureADTokenExchange","exp":%d}`, sub, time.Now().Add(10*time.Minute).Unix())
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2ln"
}

func TestAzureCommandsAgainstEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	py := testenv.Python(t)
	res := emulator.DefaultResources()
	res.Apps[0].AppSettings = map[string]string{"DATABASE_PASSWORD": dbSecret}
	emu, err := emulator.Start(context.Background(), emulator.Config{Python: py, Workers: 1, Resources: res, RetryAfter: 1})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	base := emu.Env()
	env := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	settingsNeeded := map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "false", "DISABLE_COLLECTSTATIC": "true"}
	noLeak := func(t *testing.T, outputs ...string) {
		t.Helper()
		for _, o := range outputs {
			for _, secret := range []string{emu.Token(), dbSecret, emu.ClientSecret()} {
				if strings.Contains(o, secret) {
					t.Errorf("output contains a secret (%.8s...):\n%s", secret, o)
				}
			}
		}
	}

	t.Run("deploy stops before uploading when settings differ", func(t *testing.T) {
		emu.ResetRequests()
		code, stdout, stderr := runAzureCmd(t, env(nil), "", "deploy", "--package", releaseDir(t, "r0", settingsNeeded))
		if code != 2 || !strings.Contains(stderr, "--fix-settings") || !strings.Contains(stderr, "DISABLE_COLLECTSTATIC") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if n := emu.Requests("POST", "/api/publish"); n != 0 {
			t.Errorf("uploaded %d times", n)
		}
		noLeak(t, stdout, stderr)
	})

	t.Run("failed deploy prints the log and no secret", func(t *testing.T) {
		emu.FailNextDeployment("demo-app", "staging", emulator.AtRuntime)
		code, stdout, stderr := runAzureCmd(t, env(nil), "", "deploy", "--package", releaseDir(t, "r1", settingsNeeded), "--fix-settings", "--json")
		if code != 1 || !strings.Contains(stderr, "RuntimeFailed") || !strings.Contains(stderr, "deployment log") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		noLeak(t, stdout, stderr)
	})

	t.Run("deploy", func(t *testing.T) {
		code, stdout, stderr := runAzureCmd(t, env(nil), "", "deploy", "--package", releaseDir(t, "r2", settingsNeeded), "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstderr: %s", code, stderr)
		}
		var out struct {
			DeploymentID string `json:"deployment_id"`
			Status       string `json:"status"`
			ReleaseID    string `json:"release_id"`
			Credential   string `json:"credential"`
		}
		if err := decodeResult(stdout, &out); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		if out.DeploymentID == "" || out.Status != "RuntimeSuccessful" || out.ReleaseID != "r2" || out.Credential != "access-token" {
			t.Errorf("summary = %+v", out)
		}
		noLeak(t, stdout, stderr)
	})

	t.Run("swap", func(t *testing.T) {
		code, stdout, stderr := runAzureCmd(t, env(nil), "", "swap", "--health-path", "/healthz", "--expect-release", "r2", "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		var rep struct{ Swapped, Verified, RolledBack bool }
		decodeResult(stdout, &rep)
		if !rep.Swapped || !rep.Verified || rep.RolledBack {
			t.Errorf("report: %s", stdout)
		}
		resp, err := http.Get(emu.ProductionURL("demo-app") + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok release=r2" {
			t.Errorf("production answers %q", b)
		}
	})

	t.Run("purge from stdin", func(t *testing.T) {
		var lines []string
		for i := 0; i < 250; i++ {
			lines = append(lines, fmt.Sprintf("/static/f%03d.css", i))
		}
		code, stdout, stderr := runAzureCmd(t, env(nil), strings.Join(lines, "\n"), "purge", "--paths-file", "-", "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstderr: %s", code, stderr)
		}
		var r struct {
			Kind     string `json:"kind"`
			Requests int    `json:"requests"`
		}
		decodeResult(stdout, &r)
		if r.Kind != "frontdoor" || r.Requests != 3 {
			t.Errorf("result: %s", stdout)
		}
	})

	t.Run("purge needs paths", func(t *testing.T) {
		code, _, stderr := runAzureCmd(t, env(nil), "", "purge")
		if code != 2 || !strings.Contains(stderr, "--paths-file") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})

	// Sign-in paths that run locally: GitHub OIDC and Azure Pipelines
	// against the emulator's TLS authority, with fake ID-token endpoints.
	var ghCalls, adoCalls atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gh":
			if r.Header.Get("Authorization") != "Bearer gh-runtime-token" || r.URL.Query().Get("audience") != "api://AzureADTokenExchange" {
				http.Error(w, "bad request", 400)
				return
			}
			ghCalls.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"value": fakeJWT("repo:org/site:environment:production")})
		case "/ado":
			if r.Header.Get("Authorization") != "Bearer ado-system-token" || r.URL.Query().Get("serviceConnectionId") != "sc-1" {
				http.Error(w, "bad request", 400)
				return
			}
			adoCalls.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"oidcToken": fakeJWT("sc://org/proj/conn")})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(idp.Close)

	t.Run("github oidc", func(t *testing.T) {
		code, stdout, stderr := runAzureCmd(t, env(map[string]string{
			"DJDEPLOY_ACCESS_TOKEN":          "",
			"AZURE_CLIENT_ID":                emu.ClientID(),
			"ACTIONS_ID_TOKEN_REQUEST_URL":   idp.URL + "/gh?api-version=2.0",
			"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-runtime-token",
		}), "", "purge", "--path", "/a.css", "--no-wait", "--json")
		if code != 0 || ghCalls.Load() == 0 {
			t.Fatalf("exit %d, ID token requests %d\nstdout: %s\nstderr: %s", code, ghCalls.Load(), stdout, stderr)
		}
		noLeak(t, stdout, stderr)
		if strings.Contains(stdout+stderr, "gh-runtime-token") {
			t.Error("the runtime token was printed")
		}
	})

	t.Run("azure pipelines", func(t *testing.T) {
		// azidentity reads SYSTEM_OIDCREQUESTURI from the process environment.
		t.Setenv("SYSTEM_OIDCREQUESTURI", idp.URL+"/ado")
		code, stdout, stderr := runAzureCmd(t, env(map[string]string{
			"DJDEPLOY_ACCESS_TOKEN":          "",
			"AZURE_CLIENT_ID":                emu.ClientID(),
			"SYSTEM_OIDCREQUESTURI":          idp.URL + "/ado",
			"SYSTEM_ACCESSTOKEN":             "ado-system-token",
			"DJDEPLOY_SERVICE_CONNECTION":    "sc-1",
			"ACTIONS_ID_TOKEN_REQUEST_URL":   "",
			"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "",
		}), "", "purge", "--path", "/a.css", "--no-wait")
		if code != 0 || adoCalls.Load() == 0 {
			t.Fatalf("exit %d, OIDC requests %d\nstdout: %s\nstderr: %s", code, adoCalls.Load(), stdout, stderr)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		code, stdout, stderr := runAzureCmd(t, env(map[string]string{
			"DJDEPLOY_ACCESS_TOKEN": "",
			"AZURE_CLIENT_ID":       emu.ClientID(),
			"AZURE_CLIENT_SECRET":   "not-the-secret-9f8e7d",
		}), "", "purge", "--path", "/a.css")
		if code != 1 || !strings.Contains(stderr, "client-secret") || !strings.Contains(stderr, emu.ClientID()) || !strings.Contains(stderr, "AADSTS7000215") {
			t.Fatalf("exit %d\nstderr: %s", code, stderr)
		}
		if strings.Contains(stdout+stderr, "not-the-secret-9f8e7d") {
			t.Error("the client secret was printed")
		}
	})
}

func TestRedactWriter(t *testing.T) {
	var b bytes.Buffer
	w := &redactWriter{w: &b, secrets: []string{"topsecret", "ab"}}
	fmt.Fprintf(w, "token=topsecret ab\n")
	if got := b.String(); got != "token=*** ab\n" {
		t.Errorf("got %q", got)
	}
}

func TestReadChanged(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		content, container string
		want               []string
	}{
		{`{"changed":["/a.css","/b.css"],"purge_paths":["/a.css"],"container":"site"}`, "site", []string{"/a.css"}},
		{`{"changed":["/a.css"]}`, "", []string{"/a.css"}},
		{`["x/y.css"]`, "", []string{"x/y.css"}},
		{"a.css\n\n# c\nb.css\n", "", []string{"a.css", "b.css"}},
	}
	for i, c := range cases {
		p := filepath.Join(dir, fmt.Sprint(i))
		os.WriteFile(p, []byte(c.content), 0o644)
		got, container, err := readChanged(&Env{}, p)
		if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") || container != c.container {
			t.Errorf("%q: got %v, container %q, %v; want %v, container %q", c.content, got, container, err, c.want, c.container)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad"), []byte(`{"nothing":1}`), 0o644)
	if _, _, err := readChanged(&Env{}, filepath.Join(dir, "bad")); err == nil {
		t.Error("a JSON object without paths was accepted")
	}
}
