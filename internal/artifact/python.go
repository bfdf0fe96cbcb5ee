package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// shimModule is the generated settings module on PYTHONPATH during the
// build. It imports the project's settings unchanged and moves STATIC_ROOT
// to the output folder, so the user's files are never edited.
const shimModule = "djdeploy_build_settings"

// placeholderSecretKey lets settings that require SECRET_KEY import during
// the build, where the real key (an App Service app setting) is absent. It
// is long and varied so Django's security.W009 does not fire on it.
const placeholderSecretKey = "djdeploy-build-placeholder-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"

// python runs an interpreter with the build's environment, never the
// runner's: only PATH, HOME, LANG and TMPDIR come from the runner.
type python struct {
	exe  string
	dir  string   // working directory: the project
	env  []string // full environment of the child
	venv string   // build virtualenv, if one was made
	hide []string // values replaced by *** in everything the child prints
}

// runError is a failed Python run with the tail of its output.
type runError struct {
	what string
	code int
	tail string
}

func (e *runError) Error() string {
	return fmt.Sprintf("%s failed (exit %d); Python said:\n%s", e.what, e.code, indent(e.tail))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// limitedBuffer keeps the first and last bytes of a long output, so that a
// chatty command cannot grow memory while the traceback at its end survives.
type limitedBuffer struct {
	max int
	buf bytes.Buffer
	cut bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf.Write(p)
	if b.buf.Len() > 2*b.max {
		keep := b.buf.Bytes()[b.buf.Len()-b.max:]
		nb := make([]byte, len(keep))
		copy(nb, keep)
		b.buf.Reset()
		b.buf.Write(nb)
		b.cut = true
	}
	return n, nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// run executes the interpreter; out is stdout and stderr interleaved.
func (p *python) run(ctx context.Context, what string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.exe, args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	out := &limitedBuffer{max: 256 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	text := redact.Values(out.String(), p.hide)
	if ctx.Err() != nil {
		return text, ctx.Err()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return text, &runError{what: what, code: ee.ExitCode(), tail: tailLines(text, 25)}
		}
		return text, fmt.Errorf("running %s: %w", p.exe, err)
	}
	return text, nil
}

// baseEnv is the little of the runner's environment a build passes on.
func baseEnv(getenv func(string) string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "SYSTEMROOT"} {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	env["LANG"] = "C.UTF-8"
	if v := getenv("LANG"); v != "" {
		env["LANG"] = v
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	return env
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// findPython picks the interpreter: the python setting, else the project's
// .venv, else python3 on PATH.
func findPython(setting, projectDir, path string) (exe string, explicit bool, err error) {
	if setting != "" {
		if strings.ContainsRune(setting, filepath.Separator) {
			if !fileExists(setting) {
				return "", true, problem.Usagef("point the python setting at an existing interpreter, e.g. .venv/bin/python or python3.12",
					"python interpreter %s does not exist", setting)
			}
			abs, _ := filepath.Abs(setting)
			return abs, true, nil
		}
		found, err := lookPath(setting, path)
		if err != nil {
			return "", true, problem.Usagef("install it, or give the interpreter's full path with --python", "python interpreter %q is not on PATH", setting)
		}
		return found, true, nil
	}
	for _, c := range []string{".venv/bin/python", "venv/bin/python"} {
		if p := filepath.Join(projectDir, c); fileExists(p) {
			return p, false, nil
		}
	}
	found, err := lookPath("python3", path)
	if err != nil {
		return "", false, problem.Usagef("install Python 3, or set --python to the interpreter that has the project's requirements",
			"no python3 on PATH and no .venv in the project")
	}
	return found, false, nil
}

// lookPath is exec.LookPath against an explicit PATH value.
func lookPath(name, pathEnv string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// djangoVersion returns the Django version the interpreter imports, or an
// error carrying Python's complaint.
func (p *python) djangoVersion(ctx context.Context) (string, error) {
	out, err := p.run(ctx, "import django", "-c", "import django; print(django.get_version())")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(tailLines(out, 1)), nil
}

// probeResult is what the probe script reports about the loaded settings.
type probeResult struct {
	DjangoVersion   string  `json:"django_version"`
	StaticURL       string  `json:"static_url"`
	StaticRoot      *string `json:"static_root"`
	Storage         string  `json:"storage"`
	ManifestName    string  `json:"manifest_name"`
	ASGIApplication string  `json:"asgi_application"`
}

// probeScript loads the settings through the shim, as collectstatic will,
// and writes what the build needs to know to the file named by argv[1]
// (stdout belongs to the user's settings, which may print).
const probeScript = `
import json, sys
import django
django.setup()
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.utils.functional import empty
if staticfiles_storage._wrapped is empty:
    staticfiles_storage._setup()
st = staticfiles_storage._wrapped
root = getattr(settings, "DJDEPLOY_PROJECT_STATIC_ROOT", None)
out = {
    "django_version": django.get_version(),
    "static_url": str(settings.STATIC_URL or ""),
    "static_root": None if root is None else str(root),
    "storage": type(st).__module__ + "." + type(st).__qualname__,
    "manifest_name": getattr(st, "manifest_name", "") if isinstance(st, ManifestFilesMixin) else "",
    "asgi_application": str(getattr(settings, "ASGI_APPLICATION", "") or ""),
}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
`

func (p *python) probe(ctx context.Context, workDir string) (*probeResult, error) {
	file := filepath.Join(workDir, "probe.json")
	if _, err := p.run(ctx, "loading the settings", "-c", probeScript, file); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the settings probe: %w", err)
	}
	var r probeResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parsing the settings probe: %w", err)
	}
	return &r, nil
}

// writeShim writes the settings shim into dir.
func writeShim(dir, settingsModule, staticRoot string) error {
	lit, _ := json.Marshal(staticRoot) // a JSON string is a valid Python literal
	src := fmt.Sprintf(`# Generated by djdeploy build; never shipped. The project's settings,
# with STATIC_ROOT moved to the build's output folder.
from %s import *  # noqa: F401,F403

try:
    DJDEPLOY_PROJECT_STATIC_ROOT = STATIC_ROOT  # noqa: F405
except NameError:
    DJDEPLOY_PROJECT_STATIC_ROOT = None
STATIC_ROOT = %s
`, settingsModule, lit)
	return os.WriteFile(filepath.Join(dir, shimModule+".py"), []byte(src), 0o644)
}
