package emulator

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

var (
	sharedOnce sync.Once
	sharedEmu  *Emulator
	sharedErr  error
)

// TestMain closes the shared emulator (and its app processes) at the end.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChildEmulator() // never returns
	}
	code := m.Run()
	if sharedEmu != nil {
		sharedEmu.Close()
	}
	os.Exit(code)
}

// shared is one emulator (default resources, no Blob) for the tests that
// only talk ARM and Kudu; tests that need a Python app call testenv.Python.
func shared(t *testing.T) *Emulator {
	t.Helper()
	sharedOnce.Do(func() {
		sharedEmu, sharedErr = Start(context.Background(), Config{Python: appPython(t), Workers: 1, Log: testLog{}})
	})
	if sharedErr != nil {
		t.Fatalf("starting emulator: %v", sharedErr)
	}
	return sharedEmu
}

type testLog struct{}

func (testLog) Write(p []byte) (int, error) {
	if os.Getenv("EMULATOR_LOG") != "" {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// staticCred is a ready token (the emulator's static one, or any string).
type staticCred string

func (c staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// armOptions points an SDK client at the emulator.
func armOptions(e *Emulator) *arm.ClientOptions {
	o := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: e.AuthorityHost(),
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Audience: ARMAudience, Endpoint: e.ARMEndpoint()},
			},
		},
		InsecureAllowCredentialWithHTTP: true,
		Retry:                           policy.RetryOptions{RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 5 * time.Second},
	}}
	o.DisableRPRegistration = true
	return o
}

// djangoApp writes a tiny Django project whose home page says text.
func djangoApp(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"manage.py":          "import os, sys\nif __name__ == '__main__':\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n    from django.core.management import execute_from_command_line\n    execute_from_command_line(sys.argv)\n",
		"requirements.txt":   "Django>=3.2\ngunicorn\nuvicorn\n",
		"mysite/__init__.py": "",
		"mysite/settings.py": "SECRET_KEY = 'test-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'mysite.urls'\nINSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\nUSE_TZ = True\n",
		"mysite/asgi.py":     "import os\nfrom django.core.asgi import get_asgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_asgi_application()\n",
		"mysite/wsgi.py":     "import os\nfrom django.core.wsgi import get_wsgi_application\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_wsgi_application()\n",
		"mysite/urls.py": fmt.Sprintf(`import os
from django.http import HttpResponse
from django.urls import path
def home(request):
    return HttpResponse(%q + " slot=" + os.environ.get("WEBSITE_SLOT_NAME", "") + " setting=" + os.environ.get("GREETING", ""))
def health(request):
    return HttpResponse("ok")
urlpatterns = [path("", home), path("healthz", health)]
`, text),
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// zipDir zips a folder (as the artifact step would, without importing it).
func zipDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if d.Name() == "__pycache__" || d.Name() == ".venv" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		w, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// do sends a request with the emulator's token (tok "" = none).
func do(t *testing.T, method, url, tok string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deployZip posts a zip through OneDeploy and returns the deployment id.
func deployZip(t *testing.T, e *Emulator, app, slot string, zip []byte) string {
	t.Helper()
	resp := do(t, "POST", e.SCMURL(app, slot)+"/api/publish?type=zip&async=true", e.Token(), zip, "Content-Type", "application/octet-stream")
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("SCM-DEPLOYMENT-ID")
	if id == "" {
		t.Fatal("publish: no SCM-DEPLOYMENT-ID header")
	}
	return id
}

// waitDeployment polls Kudu until the deployment is complete and returns
// its DeployResult status.
func waitDeployment(t *testing.T, e *Emulator, app, slot, id string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp := do(t, "GET", e.SCMURL(app, slot)+"/api/deployments/"+id, e.Token(), nil)
		body := readAll(t, resp)
		if resp.StatusCode == http.StatusOK {
			var status int
			if i := strings.Index(body, `"status":`); i >= 0 {
				fmt.Sscanf(body[i+len(`"status":`):], "%d", &status)
			}
			return status, body
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("deployment %s: %d %s", id, resp.StatusCode, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("deployment %s did not complete", id)
	return 0, ""
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, readAll(t, resp)
}

// appPython is the Python for emulators whose tests may not run a Django
// app (the ones that do call testenv.Python, which fails or skips): the
// main test environment's when present, else the emulator's own default.
func appPython(t *testing.T) string {
	if p := os.Getenv("DJDEPLOY_TEST_PYTHON"); p != "" {
		return p
	}
	if p := filepath.Join(testenv.RepoRoot(t), ".tools", "py", "bin", "python"); fileExists(p) {
		return p
	}
	return ""
}
