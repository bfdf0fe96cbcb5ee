package doctor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// DjangoFacts are the settings as App Service would load them: the
// project's settings module with the slot's app settings (and connection
// strings, and the WEBSITE_* variables App Service sets) as environment.
type DjangoFacts struct {
	Module       string   `json:"module"`
	File         string   `json:"file"` // settings file, relative to the project
	LoadError    string   `json:"load_error,omitempty"`
	Debug        bool     `json:"debug"`
	AllowedHosts []string `json:"allowed_hosts"`
	// HostAllowed: does ALLOWED_HOSTS accept the site's default host name
	// (nil when there is none to test).
	HostAllowed   *bool    `json:"host_allowed"`
	SecretKeySet  bool     `json:"secret_key_set"`
	SecretKeyHash string   `json:"secret_key_sha256"` // never the key itself
	SecretKeyWeak bool     `json:"secret_key_weak"`
	Middleware    []string `json:"middleware"`
	StaticURL     string   `json:"static_url"`
	StaticStorage string   `json:"static_storage"`
	DatabaseHosts []string `json:"database_hosts"`
}

// Literal is a string literal of a settings file, kept only as a hash (to
// recognize the key in effect) and whether it is assigned to SECRET_KEY
// directly.
type Literal struct {
	File   string
	Line   int
	SHA256 string
	// SecretKey: the line is SECRET_KEY = '<literal>' (a key in code, used
	// whatever the environment says).
	SecretKey bool
}

// probeScript loads the settings (no django.setup(): only settings are
// needed, so apps are not imported) and writes JSON to argv[1]; stdout
// belongs to the user's settings, which may print.
const probeScript = `
import hashlib, json, sys
out = {"load_error": ""}
try:
    from django.conf import settings
    out["debug"] = bool(settings.DEBUG)
    out["allowed_hosts"] = [str(h) for h in settings.ALLOWED_HOSTS]
    host = sys.argv[2]
    if host:
        from django.http.request import validate_host
        out["host_allowed"] = bool(validate_host(host.split(":")[0], settings.ALLOWED_HOSTS))
    try:
        key = settings.SECRET_KEY
    except Exception:
        key = ""
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    out["secret_key_set"] = bool(key)
    out["secret_key_sha256"] = hashlib.sha256(key.encode("utf-8")).hexdigest() if key else ""
    # Django's security.W009: short, few distinct characters, or django-insecure-.
    out["secret_key_weak"] = bool(key) and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure"))
    out["middleware"] = [str(m) for m in (getattr(settings, "MIDDLEWARE", None) or [])]
    out["static_url"] = str(getattr(settings, "STATIC_URL", "") or "")
    storage = ""
    storages = getattr(settings, "STORAGES", None)
    if isinstance(storages, dict) and isinstance(storages.get("staticfiles"), dict):
        storage = storages["staticfiles"].get("BACKEND", "")
    if not storage:
        storage = getattr(settings, "STATICFILES_STORAGE", "") or ""
    out["static_storage"] = str(storage)
    dbs = getattr(settings, "DATABASES", {}) or {}
    out["database_hosts"] = sorted({str(d.get("HOST") or "") for d in dbs.values() if isinstance(d, dict)} - {""})
except Exception as e:
    out["load_error"] = "%s: %s" % (type(e).__name__, e)
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
`

// inspectProject detects the project, scans its settings files for string
// literals and loads the settings with the app's environment.
func inspectProject(ctx context.Context, o Options, f *Facts) (*DjangoFacts, []Literal, error) {
	module := f.AppSettings["DJANGO_SETTINGS_MODULE"] // App Service passes it to the app
	proj, err := artifact.DetectProject(o.ProjectDir, module)
	if err != nil && module != "" {
		// The app setting may name a module only the zip has; fall back to manage.py's.
		proj, err = artifact.DetectProject(o.ProjectDir, "")
	}
	if err != nil {
		return nil, nil, err
	}
	if missing, ok := artifact.MissingServerPackages(proj); ok {
		f.MissingServer = missing
	}
	files := settingsFiles(proj.Dir, proj.SettingsModule)
	var lits []Literal
	for _, rel := range files {
		src, err := os.ReadFile(filepath.Join(proj.Dir, rel))
		if err != nil {
			continue
		}
		lits = append(lits, scanLiterals(rel, src)...)
	}
	dj := &DjangoFacts{Module: proj.SettingsModule}
	if len(files) > 0 {
		dj.File = files[0]
	}

	py, err := pythonFor(o, proj.Dir)
	if err != nil {
		return nil, nil, err
	}
	host := ""
	if f.Posture != nil {
		host = f.Posture.Site.DefaultHostName
	}
	env := probeEnv(o, f, proj, host)
	tmp, err := os.MkdirTemp("", "djdeploy-doctor-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	outFile := filepath.Join(tmp, "probe.json")
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, py, "-c", probeScript, outFile, host)
	cmd.Dir = proj.Dir
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	data, readErr := os.ReadFile(outFile)
	if runErr != nil || readErr != nil {
		dj.LoadError = fmt.Sprintf("%s could not run the probe: %s", py, lastLines(buf.String(), 3))
		if runErr == nil {
			dj.LoadError = fmt.Sprintf("%s wrote no result: %s", py, lastLines(buf.String(), 3))
		}
	} else if err := json.Unmarshal(data, dj); err != nil {
		dj.LoadError = "the probe's result is not JSON: " + err.Error()
	}
	dj.Module = proj.SettingsModule
	// Python's messages may quote a setting's value (e.g. a bad URL).
	dj.LoadError = redact(dj.LoadError, f)
	return dj, lits, nil
}

// pythonFor picks the interpreter as the build does: the python setting,
// else the project's virtualenv, else python3 on PATH.
func pythonFor(o Options, dir string) (string, error) {
	if o.Python != "" {
		p, err := exec.LookPath(o.Python)
		if err != nil {
			return "", problem.Usagef("point --python at an interpreter that has the project's requirements", "python interpreter %s not found", o.Python)
		}
		return p, nil
	}
	for _, c := range []string{".venv/bin/python", "venv/bin/python"} {
		if p := filepath.Join(dir, c); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", problem.Usagef("install Python 3, or set --python to the interpreter that has the project's requirements", "no python3 on PATH and no .venv in the project")
	}
	return p, nil
}

// probeEnv is what the app sees on App Service, minus the platform's
// internals: the runner's PATH/HOME/LANG/TMPDIR, the app settings, the
// connection strings and the WEBSITE_* names; nothing else of the runner
// (its own DEBUG or SECRET_KEY must not leak into the verdict).
func probeEnv(o Options, f *Facts, proj *artifact.Project, host string) []string {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	for k, v := range appservice.ConnectionStringEnv(f.ConnStrings) {
		env[k] = v
	}
	for k, v := range f.AppSettings {
		env[k] = v
	}
	env["WEBSITE_SITE_NAME"] = f.Target.App
	env["WEBSITE_RESOURCE_GROUP"] = f.Target.ResourceGroup
	if host != "" {
		env["WEBSITE_HOSTNAME"] = host
	}
	if f.Target.IsProduction() {
		env["WEBSITE_SLOT_NAME"] = "Production"
	} else {
		env["WEBSITE_SLOT_NAME"] = f.Target.Slot
	}
	env["DJANGO_SETTINGS_MODULE"] = proj.SettingsModule
	env["PYTHONPATH"] = proj.Dir
	env["PYTHONDONTWRITEBYTECODE"] = "1" // read-only: no __pycache__ in the project
	env["PYTHONIOENCODING"] = "utf-8"
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// settingsFiles are the settings module's file and, when the module is a
// package or lives in a settings package (settings/base.py, ...), the
// other .py files beside it: keys often hide in base.py or local.py.
func settingsFiles(root, module string) []string {
	rel := filepath.Join(strings.Split(module, ".")...)
	var first, dir string
	switch {
	case fileExists(filepath.Join(root, rel+".py")):
		first, dir = rel+".py", filepath.Dir(rel)
	case fileExists(filepath.Join(root, rel, "__init__.py")):
		first, dir = filepath.Join(rel, "__init__.py"), rel
	default:
		return nil
	}
	out := []string{first}
	if strings.Contains(filepath.Base(dir), "settings") {
		ents, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".py") && p != first {
				out = append(out, p)
			}
		}
	}
	return out
}

var (
	// One-line string literals, with optional r/u/b prefixes.
	literalRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])[rRuUbB]{0,2}("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')`)
	// SECRET_KEY = "..." (an optional annotation and a trailing comment aside).
	secretAssignRe = regexp.MustCompile(`^\s*SECRET_KEY\s*(?::\s*[A-Za-z_.\[\]]+\s*)?=\s*[rRuU]?("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')\s*(?:#.*)?$`)
)

// scanLiterals finds the string literals of a Python file (8 characters
// or more: shorter ones are no secret key) and marks SECRET_KEY literals.
// Triple-quoted strings are docstrings and are skipped.
func scanLiterals(file string, src []byte) []Literal {
	var out []Literal
	for i, line := range strings.Split(string(src), "\n") {
		code := strings.TrimSpace(line)
		if strings.HasPrefix(code, "#") || strings.Contains(code, `"""`) || strings.Contains(code, "'''") {
			continue
		}
		direct := secretAssignRe.FindStringSubmatch(line)
		for _, m := range literalRe.FindAllStringSubmatch(line, -1) {
			body := m[1][1 : len(m[1])-1]
			if len(body) < 8 {
				continue
			}
			sum := sha256.Sum256([]byte(unescape(body)))
			out = append(out, Literal{File: file, Line: i + 1, SHA256: hex.EncodeToString(sum[:]), SecretKey: direct != nil && direct[1] == m[1]})
		}
	}
	return out
}

// unescape undoes the simple escapes a key might contain.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\\`, `\`, `\'`, `'`, `\"`, `"`, `\n`, "\n", `\t`, "\t")
	return r.Replace(s)
}

// redact removes app setting and connection string values from s.
func redact(s string, f *Facts) string {
	if s == "" {
		return s
	}
	var vals []string
	for _, v := range f.AppSettings {
		vals = append(vals, v)
	}
	for _, v := range f.ConnStrings {
		vals = append(vals, v.Value)
	}
	// Longest first, so a value containing another is masked whole.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// djangoRules: DEBUG, ALLOWED_HOSTS, SECRET_KEY and static files, from
// the loaded settings when the project was checked, else from what the app
// settings alone say.
func djangoRules(f *Facts, add func(id string, l Level, where, msg, fix string)) {
	t := f.Target
	az := azTarget(t)
	setCmd := func(kv string) string { return "az webapp config appsettings set " + az + " --settings " + kv }
	dj := f.Django

	// SECRET_KEY literals are reported even when the settings would not load.
	reported := map[string]bool{}
	for _, l := range f.Literals {
		if l.SecretKey {
			where := fmt.Sprintf("%s:%d", l.File, l.Line)
			reported[l.SHA256] = true
			add("secret-key-in-code", Error, where, "SECRET_KEY is a string literal in the code: anyone with the repository can forge sessions and password reset links",
				"read it from the environment (SECRET_KEY = os.environ[\"SECRET_KEY\"]), set a new random key as an app setting or Key Vault reference")
		}
	}

	if dj == nil {
		// Without the project, only an app setting that plainly turns DEBUG on is known.
		for _, k := range []string{"DEBUG", "DJANGO_DEBUG"} {
			if v, ok := f.AppSettings[k]; ok && truthy(v) {
				add("debug", Error, "app setting "+k, "app setting "+k+" turns DEBUG on (if settings.py reads it): error pages show code, settings and SQL to anyone",
					setCmd(k+"=false"))
			}
		}
		if v, ok := f.AppSettings["STATIC_URL"]; ok && f.CDN != "" && !absoluteURL(v) {
			add("static-files", Warning, "app setting STATIC_URL", "STATIC_URL is relative while CDN "+f.CDN+" is configured: pages link the app, not the CDN",
				"set STATIC_URL to the CDN endpoint's URL (djdeploy release sets it for you)")
		}
		return
	}
	if dj.LoadError != "" {
		add("django-settings", Warning, dj.Module, "the Django settings could not be loaded with the app's settings, so DEBUG, ALLOWED_HOSTS, SECRET_KEY and static files were not checked: "+dj.LoadError,
			"set --python to an interpreter with the project's requirements, or fix the error above")
		return
	}
	where := dj.Module
	if dj.Debug {
		src := "settings.DEBUG"
		for _, k := range []string{"DEBUG", "DJANGO_DEBUG"} {
			if v, ok := f.AppSettings[k]; ok && truthy(v) {
				src = "app setting " + k
			}
		}
		fix := "make DEBUG default to False and read it from an app setting, e.g. DEBUG = os.environ.get(\"DEBUG\") == \"true\""
		if strings.HasPrefix(src, "app setting ") {
			fix = setCmd(strings.TrimPrefix(src, "app setting ") + "=false")
		}
		add("debug", Error, src, "DEBUG is on in the app as App Service runs it: error pages show code, settings and SQL to anyone", fix)
	}
	if len(dj.AllowedHosts) == 0 {
		host := "<app>.azurewebsites.net"
		if f.Posture != nil && f.Posture.Site.DefaultHostName != "" {
			host = f.Posture.Site.DefaultHostName
		}
		add("allowed-hosts", Error, where+".ALLOWED_HOSTS", "ALLOWED_HOSTS is empty: Django answers 400 Bad Request to every request for the site's host names",
			"list the site's host names, e.g. ALLOWED_HOSTS = [os.environ[\"WEBSITE_HOSTNAME\"]] (App Service sets it to "+host+")")
	} else {
		for _, h := range dj.AllowedHosts {
			if h == "*" {
				add("allowed-hosts", Info, where+".ALLOWED_HOSTS", "ALLOWED_HOSTS is '*': any Host header is accepted (password reset links can be poisoned unless App Service filters hosts)",
					"list the site's host names instead, e.g. [os.environ[\"WEBSITE_HOSTNAME\"], \"www.example.com\"]")
				break
			}
		}
		if dj.HostAllowed != nil && !*dj.HostAllowed && f.Posture != nil {
			add("allowed-hosts", Warning, where+".ALLOWED_HOSTS", "ALLOWED_HOSTS does not accept the site's own host name "+f.Posture.Site.DefaultHostName+" (health checks and warm-up requests use it and get 400)",
				"add os.environ[\"WEBSITE_HOSTNAME\"] to ALLOWED_HOSTS")
		}
	}
	if dj.SecretKeySet && !reported[dj.SecretKeyHash] {
		for _, l := range f.Literals {
			if l.SHA256 == dj.SecretKeyHash {
				reported[l.SHA256] = true
				add("secret-key-in-code", Error, fmt.Sprintf("%s:%d", l.File, l.Line), "the SECRET_KEY in effect is a string literal in the code (the fallback is used: no SECRET_KEY app setting reaches it)",
					setCmd("SECRET_KEY=<50+ random characters>")+" (or a Key Vault reference), and drop the literal")
				break
			}
		}
	}
	if dj.SecretKeySet && !reported[dj.SecretKeyHash] && dj.SecretKeyWeak {
		add("secret-key-weak", Warning, where+".SECRET_KEY", "SECRET_KEY is weak (under 50 characters, few distinct ones, or django-insecure-): Django's check --deploy flags it too",
			setCmd("SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')\""))
	}
	if !dj.SecretKeySet {
		add("secret-key-missing", Error, where+".SECRET_KEY", "SECRET_KEY is empty as App Service runs the app: Django refuses to start",
			setCmd("SECRET_KEY=<50+ random characters>")+" (or a Key Vault reference)")
	}

	// Static files.
	offloaded := absoluteURL(dj.StaticURL) || strings.Contains(strings.ToLower(dj.StaticStorage), "azure")
	if !offloaded {
		whitenoise := false
		for _, m := range dj.Middleware {
			if strings.HasPrefix(m, "whitenoise.") {
				whitenoise = true
			}
		}
		switch {
		case f.CDN != "":
			add("static-files", Warning, where+".STATIC_URL", fmt.Sprintf("STATIC_URL is %q while CDN %s is configured: pages link the app, which serves every static file itself", dj.StaticURL, f.CDN),
				"set STATIC_URL from an app setting pointing at the CDN endpoint (djdeploy release sets STATIC_URL for you)")
		case whitenoise:
			add("static-files", Warning, where+".MIDDLEWARE", "static files are served by the app (whitenoise) instead of Blob Storage/CDN: every image and stylesheet costs a worker",
				"sync them to Blob Storage behind a CDN (djdeploy static sync / release) and set STATIC_URL to its URL")
		case !dj.Debug:
			add("static-files", Warning, where+".STATIC_URL", fmt.Sprintf("STATIC_URL is %q and nothing serves it: with DEBUG off Django does not serve static files, so they answer 404", dj.StaticURL),
				"sync them to Blob Storage/CDN (djdeploy release) and set STATIC_URL to its URL")
		}
	}
}

func absoluteURL(u string) bool {
	u = strings.ToLower(strings.TrimSpace(u))
	return strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "//")
}
