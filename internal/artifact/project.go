package artifact

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// Project is a Django project folder as djdeploy found it.
type Project struct {
	// Dir is the absolute project folder with symlinks resolved.
	Dir string
	// Name is the folder's base name.
	Name string
	// SettingsModule is the dotted settings module (mysite.settings).
	SettingsModule string
	// Requirements is requirements.txt or pyproject.toml (relative to Dir).
	Requirements string
}

// settingsRe finds os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.y")
// the way django-admin startproject writes it, quotes and spacing aside.
var settingsRe = regexp.MustCompile(`os\.environ\.setdefault\(\s*['"]DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([^'"]+)['"]\s*\)`)

var moduleRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// SettingsModuleFromManagePy returns the settings module manage.py sets by
// default, or "" when it sets none. Commented-out lines are ignored.
func SettingsModuleFromManagePy(src []byte) string {
	for _, line := range strings.Split(string(src), "\n") {
		code := strings.TrimSpace(line)
		if strings.HasPrefix(code, "#") {
			continue
		}
		if m := settingsRe.FindStringSubmatch(code); m != nil {
			return m[1]
		}
	}
	return ""
}

// DetectProject checks that dir is a Django project (manage.py, a settings
// module that exists in it, requirements) and describes it. settingsModule
// overrides the one manage.py names. Every problem is a usage error naming
// what is missing.
func DetectProject(dir, settingsModule string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, problem.Usagef("pass the folder that holds manage.py with --project", "project folder %s: %v", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil || !st.IsDir() {
		return nil, problem.Usagef("pass the folder that holds manage.py with --project", "project folder %s does not exist or is not a folder", dir)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, problem.Usagef("pass the folder that holds manage.py with --project", "project folder %s: %v", dir, err)
	}
	p := &Project{Dir: abs, Name: filepath.Base(abs)}

	var missing []string
	src, err := os.ReadFile(filepath.Join(abs, "manage.py"))
	if err != nil {
		missing = append(missing, "manage.py")
	}
	switch {
	case fileExists(filepath.Join(abs, "requirements.txt")):
		p.Requirements = "requirements.txt"
	case fileExists(filepath.Join(abs, "pyproject.toml")):
		p.Requirements = "pyproject.toml"
	default:
		missing = append(missing, "requirements.txt (or pyproject.toml)")
	}
	if len(missing) > 0 {
		return nil, problem.Usagef("run djdeploy on the folder that holds manage.py and requirements.txt (--project DIR), the one 'django-admin startproject' made",
			"%s is not a Django project: no %s", dir, strings.Join(missing, " and no "))
	}

	p.SettingsModule = settingsModule
	if p.SettingsModule == "" {
		p.SettingsModule = SettingsModuleFromManagePy(src)
		if p.SettingsModule == "" {
			return nil, problem.Usagef("set the settings-module setting (--settings-module mysite.settings)",
				"%s: manage.py does not set DJANGO_SETTINGS_MODULE with os.environ.setdefault, so the settings module is unknown", dir)
		}
	}
	if !moduleRe.MatchString(p.SettingsModule) {
		return nil, problem.Usagef("give a dotted Python module name such as mysite.settings", "settings module %q is not a Python module name", p.SettingsModule)
	}
	if _, err := moduleFile(abs, p.SettingsModule); err != nil {
		return nil, problem.Usagef("check the settings-module setting, or the DJANGO_SETTINGS_MODULE default in manage.py",
			"settings module %s not found in %s: %v", p.SettingsModule, dir, err)
	}
	return p, nil
}

// moduleFile finds a dotted module's file under root, as a Python with
// root on sys.path would.
func moduleFile(root, module string) (string, error) {
	rel := filepath.Join(strings.Split(module, ".")...)
	for _, c := range []string{rel + ".py", filepath.Join(rel, "__init__.py")} {
		if fileExists(filepath.Join(root, c)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("neither %s.py nor %s exists", filepath.ToSlash(rel), filepath.ToSlash(filepath.Join(rel, "__init__.py")))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// within reports whether p is root or inside it (both absolute, resolved).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// asgiModule guesses the ASGI module: from ASGI_APPLICATION if set, else the
// settings package's asgi.py.
func asgiModule(root, settingsModule, asgiApplication string) (string, bool) {
	if asgiApplication != "" {
		if i := strings.LastIndex(asgiApplication, "."); i > 0 {
			return asgiApplication[:i], true
		}
	}
	pkg := settingsModule
	if i := strings.LastIndex(pkg, "."); i > 0 {
		pkg = pkg[:i]
	}
	// mysite.settings.production -> try mysite.settings.asgi, then mysite.asgi.
	for cand := pkg; ; {
		m := cand + ".asgi"
		if _, err := moduleFile(root, m); err == nil {
			return m, true
		}
		i := strings.LastIndex(cand, ".")
		if i < 0 {
			break
		}
		cand = cand[:i]
	}
	top := strings.SplitN(settingsModule, ".", 2)[0]
	return top + ".asgi", false
}
