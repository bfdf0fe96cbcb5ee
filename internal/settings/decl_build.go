package settings

import (
	"strings"

	"github.com/djdeploy/djdeploy/internal/redact"
)

// buildEnvValues are the build-env values to mask in output (redact.Maskable
// picks them): KEY=VALUE items, where an item without "=" continues the
// previous value, as djdeploy build reads them.
func buildEnvValues(raw string) []string {
	env := map[string]string{}
	last := ""
	for _, it := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '\n' }) {
		it = strings.TrimSpace(it)
		if k, v, ok := strings.Cut(it, "="); ok && k != "" && !strings.ContainsAny(k, " \t") {
			env[k], last = v, k
		} else if last != "" {
			env[last] += "," + it
		}
	}
	return redact.Maskable(env)
}

// Settings of `djdeploy build` (package artifact). project, python and
// python-version are shared and live in decl_core.go.
func init() {
	build := []string{"build"}
	Register(
		Setting{Name: "out", Group: "Build",
			Description: "folder that receives app.zip, static/ (the collected files) and release.json; emptied of those three first",
			Commands:    build},
		Setting{Name: "settings-module", Group: "Build",
			Description: "Django settings module (default: the one manage.py sets with os.environ.setdefault); DJANGO_SETTINGS_MODULE of the runner is never read",
			Commands:    build},
		Setting{Name: "dependency-mode", Group: "Build", Default: "remote", Enum: []string{"remote", "local"},
			Description: "remote: App Service installs requirements.txt during deployment (SCM_DO_BUILD_DURING_DEPLOYMENT=true); local: wheels for App Service's platform are vendored into the zip",
			Commands:    build},
		Setting{Name: "build-venv", Group: "Build", Default: "auto", Enum: []string{"auto", "always", "never"},
			Description: "virtualenv for running manage.py during the build: auto makes one only when the interpreter cannot import Django; never fails instead",
			Commands:    build},
		Setting{Name: "wheel-dir", Group: "Build",
			Description: "folder of wheels to install from instead of PyPI (pip --no-index --find-links)",
			Commands:    build},
		Setting{Name: "pip-index-url", Group: "Build",
			Description: "package index to install from instead of PyPI (pip --index-url), e.g. an Azure Artifacts feed",
			Commands:    build},
		Setting{Name: "build-env", Kind: List, Group: "Build", MaskParts: buildEnvValues,
			Description: "KEY=VALUE environment of manage.py during the build: the app settings the app will run with (e.g. STATIC_URL=https://cdn.example.net/static/); the runner's environment is not passed",
			Commands:    build},
		Setting{Name: "fail-on-check", Kind: Bool, Group: "Build",
			Description: "fail the build when 'manage.py check --deploy' reports anything",
			Commands:    build},
	)
}
