package appservice

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

const secretValue = "postgres://admin:hunter2-very-secret@db/app"

// configFake serves app settings, site config, plan and slot names for the
// slot, recording writes.
func configFake(t *testing.T, f *fake, settings map[string]string, fx, cmdline, sku string, sticky []string) (puts *[]map[string]string, patches *[]map[string]any) {
	puts, patches = &[]map[string]string{}, &[]map[string]any{}
	f.handle("POST "+sitePath(testSlot)+"/config/appsettings/list", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": settings})
	})
	f.handle("PUT "+sitePath(testSlot)+"/config/appsettings", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Properties map[string]string `json:"properties"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		*puts = append(*puts, body.Properties)
		writeJSON(w, 200, map[string]any{"properties": body.Properties})
	})
	f.handle("GET "+sitePath(testSlot)+"/config/web", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": map[string]any{"linuxFxVersion": fx, "appCommandLine": cmdline}})
	})
	f.handle("PATCH "+sitePath(testSlot)+"/config/web", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Properties map[string]any `json:"properties"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		*patches = append(*patches, body.Properties)
		writeJSON(w, 200, map[string]any{"properties": body.Properties})
	})
	f.handle("GET /subscriptions/"+testSub+"/resourceGroups/"+testRG+"/providers/Microsoft.Web/serverfarms/plan", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"sku": map[string]any{"name": sku, "tier": "PremiumV3"}})
	})
	f.handle("GET "+sitePath("")+"/config/slotConfigNames", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": map[string]any{"appSettingNames": sticky}})
	})
	return puts, patches
}

func remoteRelease() *Release {
	r := &Release{DependencyMode: "remote", PythonVersion: "3.12",
		AppSettings: map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "true", "DISABLE_COLLECTSTATIC": "true"}}
	r.StartupHint.ASGIModule = "mysite.asgi"
	return r
}

func TestEnsureConfigReportsWhatToSetWithoutWriting(t *testing.T) {
	f, c, _, out := setup(t)
	puts, patches := configFake(t, f, map[string]string{"DATABASE_URL": secretValue, "SCM_DO_BUILD_DURING_DEPLOYMENT": "false"}, "PYTHON|3.11", "", "P1v3", nil)
	res, err := c.EnsureConfig(context.Background(), ConfigOptions{Target: slotTarget(), Release: remoteRelease(), StartupCommand: "auto"})
	p, ok := problem.As(err)
	if !ok || !p.Usage {
		t.Fatalf("err = %v, want a usage error", err)
	}
	if len(*puts) != 0 || len(*patches) != 0 {
		t.Errorf("wrote without --fix-settings: puts=%v patches=%v", *puts, *patches)
	}
	if len(res.Changes) != 4 {
		t.Errorf("changes = %+v, want 4 (2 settings, runtime, startup)", res.Changes)
	}
	for _, want := range []string{"SCM_DO_BUILD_DURING_DEPLOYMENT", "DISABLE_COLLECTSTATIC", "PYTHON|3.12", "--fix-settings", "az webapp config appsettings set -g rg -n app --slot staging", "--workers 5"} {
		if !strings.Contains(p.What+p.Fix, want) {
			t.Errorf("message lacks %q:\n%s\n%s", want, p.What, p.Fix)
		}
	}
	if strings.Contains(p.Error()+p.Fix+out.String(), "hunter2") {
		t.Error("a setting value leaked into the message")
	}
}

func TestEnsureConfigFixesInOneWriteEach(t *testing.T) {
	f, c, _, out := setup(t)
	kv := "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/x)"
	puts, patches := configFake(t, f, map[string]string{"DATABASE_URL": secretValue, "SECRET_KEY": kv}, "PYTHON|3.11", "", "P1v3", []string{"DJDEPLOY_RELEASE_ID"})
	res, err := c.EnsureConfig(context.Background(), ConfigOptions{Target: slotTarget(), Release: remoteRelease(), StartupCommand: "auto", Fix: true,
		ExtraSettings: map[string]string{"DJDEPLOY_RELEASE_ID": "r42", "STATIC_URL": "https://cdn/static/"}})
	if err != nil {
		t.Fatalf("EnsureConfig: %v", err)
	}
	if !res.Applied || len(*puts) != 1 || len(*patches) != 1 {
		t.Fatalf("applied=%v puts=%d patches=%d", res.Applied, len(*puts), len(*patches))
	}
	want := map[string]string{"DATABASE_URL": secretValue, "SECRET_KEY": kv, "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
		"DISABLE_COLLECTSTATIC": "true", "DJDEPLOY_RELEASE_ID": "r42", "STATIC_URL": "https://cdn/static/"}
	got := (*puts)[0]
	if len(got) != len(want) {
		t.Errorf("PUT = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("PUT %s = %q, want %q", k, got[k], v)
		}
	}
	patch := (*patches)[0]
	if patch["linuxFxVersion"] != "PYTHON|3.12" {
		t.Errorf("linuxFxVersion = %v", patch["linuxFxVersion"])
	}
	wantCmd := `DJDEPLOY_RELEASE_ID="$(cat DJDEPLOY_RELEASE 2>/dev/null || printf '%s' "$DJDEPLOY_RELEASE_ID")" ` + "gunicorn --workers 5 --timeout 60 --access-logfile '-' --error-logfile '-' --bind=0.0.0.0:${PORT:-8000} -k uvicorn.workers.UvicornWorker mysite.asgi"
	if patch["appCommandLine"] != wantCmd {
		t.Errorf("appCommandLine = %v", patch["appCommandLine"])
	}
	if !strings.Contains(out.String(), "DJDEPLOY_RELEASE_ID is a deployment slot setting") {
		t.Errorf("no sticky warning:\n%s", out)
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Error("a setting value was printed")
	}
}

func TestEnsureConfigNothingToDo(t *testing.T) {
	f, c, _, _ := setup(t)
	cmd := StartupCommand("mysite.asgi", 3, "")
	puts, patches := configFake(t, f, map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "True", "DISABLE_COLLECTSTATIC": "true"}, "python|3.12", cmd, "B2", nil)
	res, err := c.EnsureConfig(context.Background(), ConfigOptions{Target: slotTarget(), Release: remoteRelease(), StartupCommand: "auto", Workers: 3})
	if err != nil {
		t.Fatalf("EnsureConfig: %v", err)
	}
	if res.Applied || len(*puts)+len(*patches) != 0 || len(res.Changes) != 0 {
		t.Errorf("res = %+v puts=%v patches=%v", res, *puts, *patches)
	}
}

func TestEnsureConfigLocalModePythonPath(t *testing.T) {
	f, c, _, _ := setup(t)
	_, patches := configFake(t, f, map[string]string{}, "PYTHON|3.12", "", "B3", nil)
	r := &Release{DependencyMode: "local", PythonVersion: "3.12", AppSettings: map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "false"}}
	r.StartupHint.ASGIModule = "mysite.asgi"
	r.StartupHint.PythonPath = ".python_packages/lib/site-packages"
	if _, err := c.EnsureConfig(context.Background(), ConfigOptions{Target: slotTarget(), Release: r, StartupCommand: "auto", Fix: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := (*patches)[0]["appCommandLine"].(string)
	if !strings.HasPrefix(got, "PYTHONPATH=.python_packages/lib/site-packages:$PYTHONPATH DJDEPLOY_RELEASE_ID=") || !strings.Contains(got, " gunicorn --workers 9 ") {
		t.Errorf("appCommandLine = %q", got)
	}
}

func TestStartupCommandHasNoChdirOrThreads(t *testing.T) {
	cmd := StartupCommand("proj.asgi", 3, "")
	if strings.Contains(cmd, "--chdir") || strings.Contains(cmd, "--threads") {
		t.Errorf("startup command = %q", cmd)
	}
}

func TestVCPUsForSKU(t *testing.T) {
	tests := map[string]int{"B1": 1, "b2": 2, "B3": 4, "S1": 1, "S3": 4, "P1v2": 1, "P3v2": 4, "P0v3": 1, "P1v3": 2, "P1mv3": 2, "P2v3": 4, "P3v3": 8}
	for sku, want := range tests {
		if got, ok := VCPUsForSKU(sku); !ok || got != want {
			t.Errorf("VCPUsForSKU(%s) = %d, %v; want %d", sku, got, ok, want)
		}
	}
	if _, ok := VCPUsForSKU("Z9"); ok {
		t.Error("unknown SKU reported as known")
	}
	if WorkersForVCPUs(2) != 5 {
		t.Errorf("WorkersForVCPUs(2) = %d", WorkersForVCPUs(2))
	}
}

func TestReadRelease(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "app.zip")
	if r, err := ReadRelease(pkg); r != nil || err != nil {
		t.Fatalf("no release.json: %v, %v", r, err)
	}
	os.WriteFile(filepath.Join(dir, "release.json"), []byte(`{"dependency_mode":"remote","python_version":"3.12","app_settings":{"A":"1"},"startup_hint":{"asgi_module":"m.asgi","pythonpath":""},"release_id":"r1"}`), 0o644)
	r, err := ReadRelease(pkg)
	if err != nil || r.DependencyMode != "remote" || r.StartupHint.ASGIModule != "m.asgi" || r.AppSettings["A"] != "1" || r.ReleaseID != "r1" {
		t.Fatalf("ReadRelease = %+v, %v", r, err)
	}
	os.WriteFile(filepath.Join(dir, "release.json"), []byte(`{`), 0o644)
	if _, err := ReadRelease(pkg); problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("bad JSON: err = %v", err)
	}
}

func TestEnsureConfigDryRunWritesNothing(t *testing.T) {
	f, c, _, _ := setup(t)
	puts, patches := configFake(t, f, map[string]string{"DATABASE_URL": secretValue}, "PYTHON|3.11", "", "B1", nil)
	res, err := c.EnsureConfig(context.Background(), ConfigOptions{Target: slotTarget(), Release: remoteRelease(), StartupCommand: "auto",
		ExtraSettings: map[string]string{"DJDEPLOY_RELEASE_ID": "r1"}, DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if len(*puts)+len(*patches) != 0 || res.Applied {
		t.Errorf("dry run wrote: puts=%v patches=%v", *puts, *patches)
	}
	var names []string
	for _, ch := range res.Changes {
		names = append(names, ch.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "DJDEPLOY_RELEASE_ID") || !strings.Contains(got, "linuxFxVersion") {
		t.Errorf("changes = %s", got)
	}
}
