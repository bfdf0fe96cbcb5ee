package cli

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

const (
	doctorDBPassword = "Db-Pa55word-must-never-print"
	doctorGoodKey    = "good-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ-never-print"
)

// doctorResources: bad-app has every misconfiguration doctor knows of on
// the Azure side; good-app has none.
const doctorResources = `
resourceGroup: doc-rg
apps:
  - name: bad-app
    plan: {sku: S1}
    httpsOnly: false
    alwaysOn: false
    basicAuth: {scm: true, ftp: true}
    appSettings:
      DEBUG: "true"
      DATABASE_URL: "postgres://admin:` + doctorDBPassword + `@bad-db.postgres.database.azure.com:5432/shop"
  - name: good-app
    plan: {sku: P1v3}
    httpsOnly: true
    healthCheckPath: /healthz
    appSettings:
      DEBUG: "false"
      SECRET_KEY: "` + doctorGoodKey + `"
      STATIC_URL: "https://cdn.example.net/static/"
    connectionStrings:
      db: {type: PostgreSQL, value: "host=good-db.postgres.database.azure.com dbname=shop password=` + doctorDBPassword + `"}
databases:
  - name: bad-db
    firewallRules:
      - {name: AllowAll_2024-5-1_10-0-0, start: 0.0.0.0, end: 255.255.255.255}
  - name: good-db
    firewallRules:
      - {name: office, start: 203.0.113.10, end: 203.0.113.10}
`

// badProject writes a copy of a Django project with a hard-coded secret
// key, no ALLOWED_HOSTS and whitenoise serving the static files.
func badProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"manage.py":        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\nfrom django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
		"requirements.txt": "Django>=3.2\nwhitenoise\n",
		"shop/__init__.py": "",
		"shop/settings.py": `import os
SECRET_KEY = 'django-insecure-+x1y2z3-hard-coded-in-the-repository'
DEBUG = os.environ.get("DEBUG", "") == "true"
ALLOWED_HOSTS = []
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]
DATABASES = {}
STATIC_URL = "/static/"
`,
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

// copyDir copies examples/django-app, so the test never touches the repository.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type doctorJSON struct {
	Findings []struct {
		ID, Level, Where, Message, Fix string
	}
	Checked, NotChecked []string
	Errors, Warnings    int
	Failed              bool
}

func TestDoctorAgainstEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	py := testenv.Python(t)
	res, err := emulator.ParseResources([]byte(doctorResources))
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.Start(context.Background(), emulator.Config{Python: py, Resources: res})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")}
	for k, v := range emu.Env() {
		env[k] = v
	}
	delete(env, "DJDEPLOY_SLOT") // doctor checks production unless a slot is given
	noLeak := func(t *testing.T, outs ...string) {
		t.Helper()
		for _, o := range outs {
			for _, s := range []string{doctorDBPassword, doctorGoodKey, emu.Token(), "hard-coded-in-the-repository"} {
				if strings.Contains(o, s) {
					t.Errorf("output contains a secret (%.10s...):\n%s", s, o)
				}
			}
		}
	}

	t.Run("misconfigured app lists each finding", func(t *testing.T) {
		proj := badProject(t)
		code, stdout, stderr := runAzureCmd(t, env, "", "doctor", "--app", "bad-app", "--project", proj, "--python", py)
		noLeak(t, stdout, stderr)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range []string{
			"error    debug", "error    allowed-hosts", "error    startup-packages", "add gunicorn and uvicorn to requirements.txt", "error    secret-key-in-code", "shop/settings.py:2",
			"error    https-only", "error    db-firewall-open", "PostgreSQL server bad-db, rule AllowAll_2024-5-1_10-0-0",
			"warning  scm-basic-auth", "warning  ftp-basic-auth", "warning  health-check", "warning  always-on", "warning  static-files",
			"fix: az webapp update -g doc-rg -n bad-app --https-only true",
			"fix: az postgres flexible-server firewall-rule delete -g doc-rg -n bad-db --rule-name AllowAll_2024-5-1_10-0-0 --yes",
			"fix: az webapp config appsettings set -g doc-rg -n bad-app --settings DEBUG=false",
			"6 errors, 5 warnings, 0 info: failed",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout, "\nerror:") || strings.Contains(stderr, "error:") {
			t.Errorf("findings must not be repeated as an error message:\n%s", stderr)
		}

		// --json: the same findings, machine-readable.
		code, stdout, stderr = runAzureCmd(t, env, "", "doctor", "--app", "bad-app", "--project", proj, "--python", py, "--json")
		noLeak(t, stdout, stderr)
		var rep doctorJSON
		if err := decodeResult(stdout, &rep); err != nil {
			t.Fatalf("not JSON (%v):\n%s", err, stdout)
		}
		var ids []string
		for _, f := range rep.Findings {
			ids = append(ids, f.Level+":"+f.ID)
			if f.Fix == "" {
				t.Errorf("%s has no fix", f.ID)
			}
		}
		sort.Strings(ids)
		want := "error:allowed-hosts,error:db-firewall-open,error:debug,error:https-only,error:secret-key-in-code,error:startup-packages," +
			"warning:always-on,warning:ftp-basic-auth,warning:health-check,warning:scm-basic-auth,warning:static-files"
		if strings.Join(ids, ",") != want {
			t.Errorf("findings = %s\nwant       %s", strings.Join(ids, ","), want)
		}
		if code != 1 || !rep.Failed || rep.Errors != 6 {
			t.Errorf("exit %d, failed %v, errors %d", code, rep.Failed, rep.Errors)
		}
	})

	t.Run("fixing the posture through the emulator clears those findings", func(t *testing.T) {
		on, off := true, false
		if err := emu.SetPosture(emulator.Posture{App: "bad-app", HTTPSOnly: &on, SCMBasicAuth: &off, FTPBasicAuth: &off}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			emu.SetPosture(emulator.Posture{App: "bad-app", HTTPSOnly: &off, SCMBasicAuth: &on, FTPBasicAuth: &on})
		})
		if err := emu.SetFirewallRules("bad-db", []emulator.FirewallRuleConfig{{Name: "azure", Start: "0.0.0.0", End: "0.0.0.0"}}); err != nil {
			t.Fatal(err)
		}
		// Without --project: only Azure's side and the DEBUG app setting.
		code, stdout, stderr := runAzureCmd(t, env, "", "doctor", "--app", "bad-app", "--json")
		noLeak(t, stdout, stderr)
		var rep doctorJSON
		if err := decodeResult(stdout, &rep); err != nil {
			t.Fatalf("not JSON (%v):\n%s\n%s", err, stdout, stderr)
		}
		var ids []string
		for _, f := range rep.Findings {
			ids = append(ids, f.Level+":"+f.ID)
		}
		sort.Strings(ids)
		if got := strings.Join(ids, ","); got != "error:debug,warning:always-on,warning:db-firewall-azure,warning:health-check" {
			t.Errorf("findings = %s", got)
		}
		if code != 1 || !strings.Contains(strings.Join(rep.NotChecked, "\n"), "pass --project") {
			t.Errorf("exit %d, notChecked %v", code, rep.NotChecked)
		}
	})

	t.Run("well-configured app has no error findings", func(t *testing.T) {
		proj := copyDir(t, filepath.Join("..", "..", "examples", "django-app"))
		code, stdout, stderr := runAzureCmd(t, env, "", "doctor", "--app", "good-app", "--project", proj, "--python", py)
		noLeak(t, stdout, stderr)
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "0 errors, 0 warnings, 0 info: passed") {
			t.Errorf("stdout:\n%s", stdout)
		}
		// It did look: the settings loaded and the database was read.
		code, stdout, _ = runAzureCmd(t, env, "", "doctor", "--app", "good-app", "--project", proj, "--python", py, "--strict", "--json")
		var rep doctorJSON
		if err := decodeResult(stdout, &rep); err != nil {
			t.Fatal(err)
		}
		checked := strings.Join(rep.Checked, "\n")
		if code != 0 || !strings.Contains(checked, "Django settings mysite.settings") || !strings.Contains(checked, "PostgreSQL server good-db: 1 firewall rules") {
			t.Errorf("exit %d, checked:\n%s", code, checked)
		}
		if _, err := os.Stat(filepath.Join(proj, "mysite", "__pycache__")); err == nil {
			t.Error("doctor wrote bytecode into the project")
		}
	})

	t.Run("strict fails on warnings", func(t *testing.T) {
		on := true
		if err := emu.SetPosture(emulator.Posture{App: "good-app", SCMBasicAuth: &on}); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runAzureCmd(t, env, "", "doctor", "--app", "good-app")
		if code != 0 || !strings.Contains(stdout, "scm-basic-auth") {
			t.Errorf("without --strict: exit %d\n%s\n%s", code, stdout, stderr)
		}
		code, stdout, _ = runAzureCmd(t, env, "", "doctor", "--app", "good-app", "--strict")
		if code != 1 || !strings.Contains(stdout, "failed, strict") {
			t.Errorf("with --strict: exit %d\n%s", code, stdout)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		code, _, stderr := runAzureCmd(t, env, "", "doctor", "--app", "bad-app", "--db-server", "nope-db")
		if code != 2 || !strings.Contains(stderr, "database server nope-db not found in resource group doc-rg") || !strings.Contains(stderr, "fix:") {
			t.Errorf("unknown db-server: exit %d\n%s", code, stderr)
		}
		code, _, stderr = runAzureCmd(t, env, "", "doctor", "--app", "bad-app", "--project", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "is not a Django project") {
			t.Errorf("non-Django folder: exit %d\n%s", code, stderr)
		}
		code, _, stderr = runAzureCmd(t, env, "", "doctor", "--app", "no-such-app")
		if code != 1 || !strings.Contains(stderr, "HTTP 404") {
			t.Errorf("unknown app: exit %d\n%s", code, stderr)
		}
	})
}
