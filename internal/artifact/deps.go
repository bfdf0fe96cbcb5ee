package artifact

// The dependency step of a build: vendoring App Service wheels (local
// mode), the build virtualenv, and the checks that the requirements can
// start the app at all. uv does the resolving and downloading when it is
// found (seconds where pip takes tens of seconds); pip remains the path
// for images without it, such as the action's.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// Installers of Options.Installer.
const (
	InstallerAuto = ""    // uv when found, else pip
	InstallerUV   = "uv"  // uv, failing when it is not found
	InstallerPip  = "pip" // python -m pip
)

// uvPlatform is uv's name for App Service's Linux: x86_64 with glibc 2.28
// or newer, which also admits manylinux2014 (glibc 2.17) wheels.
const uvPlatform = "x86_64-manylinux_2_28"

// serverPackages are what the auto startup command (gunicorn with
// uvicorn's worker) imports before any of the app's code.
var serverPackages = []string{"gunicorn", "uvicorn"}

// installerEnvNames are the runner's variables an installer needs to
// reach the index at all (proxies, TLS roots behind an intercepting proxy,
// the runner's pip/uv configuration). manage.py never sees them.
var installerEnvNames = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_CLIENT_CERT", "PIP_TRUSTED_HOST",
	"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CACHE_DIR", "PIP_NO_CACHE_DIR",
	"UV_CACHE_DIR", "UV_NO_CACHE", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX"}

// installer runs uv or pip for one build.
type installer struct {
	uv      string // uv's path; "" = pip through the interpreter
	env     []string
	opt     Options
	project *Project
}

func (in *installer) name() string {
	if in.uv != "" {
		return "uv"
	}
	return "pip"
}

// newInstaller picks uv or pip: Options.UV, else uv beside the interpreter
// (a virtualenv that has it), else uv on the runner's PATH, else pip.
func newInstaller(opt Options, proj *Project, interpreter string) (*installer, error) {
	env := baseEnv(opt.Getenv)
	for _, k := range installerEnvNames {
		if v := opt.Getenv(k); v != "" {
			env[k] = v
		}
	}
	in := &installer{env: envList(env), opt: opt, project: proj}
	if opt.Installer == InstallerPip {
		return in, nil
	}
	if opt.Installer != InstallerAuto && opt.Installer != InstallerUV {
		return nil, problem.Usagef("use uv or pip", "installer %q is not accepted", opt.Installer)
	}
	switch {
	case opt.UV != "":
		if !fileExists(opt.UV) {
			return nil, problem.Usagef("point it at the uv executable", "uv %s does not exist", opt.UV)
		}
		in.uv = opt.UV
	case interpreter != "" && fileExists(filepath.Join(filepath.Dir(interpreter), "uv")):
		in.uv = filepath.Join(filepath.Dir(interpreter), "uv")
	default:
		if p, err := lookPath("uv", env["PATH"]); err == nil {
			in.uv = p
		}
	}
	if in.uv == "" && opt.Installer == InstallerUV {
		return nil, problem.Usagef("install uv (pip install uv), or let djdeploy use pip", "uv is not beside %s nor on PATH", interpreter)
	}
	return in, nil
}

// run runs uv or python -m pip with the installer's environment.
func (in *installer) run(ctx context.Context, py *python, what string, args ...string) (string, error) {
	r := &python{exe: py.exe, dir: in.project.Dir, env: in.env}
	if in.uv != "" {
		r.exe = in.uv
	} else {
		args = append([]string{"-m", "pip"}, args...)
	}
	return r.run(ctx, what, args...)
}

// indexArgs are the index options of both tools: wheel-dir replaces every
// index, pip-index-url replaces PyPI.
func (in *installer) indexArgs() []string {
	switch {
	case in.opt.WheelDir != "":
		return []string{"--no-index", "--find-links", in.opt.WheelDir}
	case in.opt.PipIndexURL != "":
		return []string{"--index-url", in.opt.PipIndexURL}
	}
	return nil
}

// vendor installs the requirements as App Service wheels into dir.
func vendor(ctx context.Context, py *python, proj *Project, dir string, opt Options, rep progress.Reporter) error {
	in, err := newInstaller(opt, proj, py.exe)
	if err != nil {
		return err
	}
	rep.Infof("vendoring requirements for App Service (CPython %s, manylinux x86_64) into %s with %s", opt.PythonVersion, LocalPackagesDir, in.name())
	var args []string
	if in.uv != "" {
		args = []string{"pip", "install", "--quiet", "--no-config", "--target", dir, "--python", py.exe,
			"--python-platform", uvPlatform, "--python-version", opt.PythonVersion, "--only-binary", ":all:"}
	} else {
		args = []string{"install", "--disable-pip-version-check", "--no-input", "--no-compile", "--progress-bar", "off",
			"--target", dir, "--python-version", opt.PythonVersion, "--implementation", "cp", "--only-binary=:all:",
			"--retries", "2", "--timeout", "20"}
		for _, p := range appServicePlatforms {
			args = append(args, "--platform", p)
		}
	}
	args = append(args, in.indexArgs()...)
	args = append(args, "-r", proj.Requirements)
	out, err := in.run(ctx, py, in.name()+" install --target", args...)
	if err != nil {
		return in.problem(ctx, py, out, err, true)
	}
	_ = os.Remove(filepath.Join(dir, ".lock")) // uv's lock on the target folder, not a package
	return checkServer(vendoredDists(dir), LocalPackagesDir+" (the vendored packages)", proj)
}

// makeVenv creates a virtualenv for running manage.py during the build and
// installs the requirements into it. It is never shipped.
func makeVenv(ctx context.Context, base *python, proj *Project, dir string, opt Options, rep progress.Reporter) (*python, error) {
	in, err := newInstaller(opt, proj, base.exe)
	if err != nil {
		return nil, err
	}
	rep.Infof("creating a build virtualenv with %s (the interpreter %s cannot import Django, or build-venv is always)", in.name(), base.exe)
	if in.uv != "" {
		_, err = in.run(ctx, base, "uv venv", "venv", "--quiet", "--no-config", "--python", base.exe, dir)
	} else {
		_, err = base.run(ctx, "python -m venv", "-m", "venv", dir)
	}
	if err != nil {
		return nil, problem.Wrap(err, "install the venv module (Debian: apt install python3-venv), or set --python to an interpreter that has the requirements",
			"creating the build virtualenv")
	}
	v := &python{exe: filepath.Join(dir, "bin", "python"), dir: base.dir, venv: dir}
	env := append([]string(nil), base.env...)
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + filepath.Join(dir, "bin") + string(os.PathListSeparator) + kv[len("PATH="):]
		}
	}
	v.env = append(env, "VIRTUAL_ENV="+dir)
	var args []string
	if in.uv != "" {
		args = []string{"pip", "install", "--quiet", "--no-config", "--python", v.exe}
	} else {
		args = []string{"install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--retries", "2", "--timeout", "20"}
	}
	args = append(args, in.indexArgs()...)
	args = append(args, "-r", proj.Requirements)
	rep.Infof("installing %s into the build virtualenv", proj.Requirements)
	out, err := in.run(ctx, v, in.name()+" install", args...)
	if err != nil {
		return nil, in.problem(ctx, v, out, err, false)
	}
	return v, nil
}

// Patterns in uv's and pip's answers that name the requirement at fault.
var (
	uvNotFoundRe  = regexp.MustCompile(`(?m)\b([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the (?:package registry|provided package locations)`)
	uvNoVersionRe = regexp.MustCompile(`(?m)there is no version of ([^\s,]+)`)
	uvNoWheelRe   = regexp.MustCompile(`(?m)\b([A-Za-z0-9][A-Za-z0-9._-]*(?:[=<>!~]=?[^\s,]+)?) has no (?:usable wheels|wheels with a matching [a-zA-Z ]+tag)`)
	pipNoMatchRe  = regexp.MustCompile(`(?m)No matching distribution found for (\S+)`)
	pipVersionsRe = regexp.MustCompile(`(?m)Could not find a version that satisfies the requirement \S+ \(from versions: ([^)]*)\)`)
	unreachableRe = regexp.MustCompile(`(?i)tcp connect error|Connection refused|Failed to establish a new connection|Name or service not known|dns error|Temporary failure in name resolution|Network is unreachable|timed out|Max retries exceeded`)
)

// problem turns a failed install into one message naming the requirement
// at fault and its fix: exit 2 for what the user must change in the
// requirements, 1 for an index that does not answer or anything unknown.
func (in *installer) problem(ctx context.Context, py *python, out string, err error, vendoring bool) error {
	var re *runError
	if !errors.As(err, &re) {
		return err
	}
	req := in.project.Requirements
	where := in.where()
	target := fmt.Sprintf("App Service (manylinux x86_64, CPython %s)", in.opt.PythonVersion)
	remote := ""
	if vendoring {
		remote = ", or use dependency-mode remote so App Service builds it from source"
	}
	notFound := func(name string) error {
		return problem.Usagef(fmt.Sprintf("check the spelling in %s (https://pypi.org/project/%s/ names real packages), then build again", req, name),
			"%s: package %s was not found on %s", req, name, where)
	}
	noVersion := func(spec string) error {
		spec = strings.ToLower(spec) // uv normalises the name, pip echoes it: one message for both
		name := reqName(spec)
		return problem.Usagef(fmt.Sprintf("pin a version that exists (pip index versions %s lists them) in %s", name, req),
			"%s: %s does not exist on %s (no such version)", req, spec, where)
	}
	noWheel := func(spec string) error {
		spec = strings.ToLower(spec)
		return problem.Usagef("pin a version that publishes manylinux x86_64 wheels for CPython "+in.opt.PythonVersion+", or put a wheel you built into wheel-dir"+remote,
			"%s: %s has no wheel for %s on %s, only a source distribution, and local mode installs wheels only", req, spec, target, where)
	}
	switch {
	case unreachableRe.MatchString(out) && !pipNoMatchRe.MatchString(out):
		return problem.Failf("check the index URL and the network (a proxy needs HTTPS_PROXY), or use wheel-dir",
			"the package index %s does not answer; %s said:\n%s", where, in.name(), indent(tailLines(out, 6)))
	}
	if in.uv != "" {
		if m := uvNoWheelRe.FindStringSubmatch(out); m != nil && vendoring {
			return noWheel(m[1])
		}
		if m := uvNoVersionRe.FindStringSubmatch(out); m != nil {
			return noVersion(m[1])
		}
		if m := uvNotFoundRe.FindStringSubmatch(out); m != nil {
			return notFound(m[1])
		}
	} else if m := pipNoMatchRe.FindStringSubmatch(out); m != nil {
		spec := m[1]
		versions := ""
		if v := pipVersionsRe.FindStringSubmatch(out); v != nil {
			versions = strings.TrimSpace(v[1])
		}
		switch {
		case versions != "" && versions != "none":
			return noVersion(spec)
		case !vendoring:
			return notFound(reqName(spec))
		}
		// pip says "from versions: none" both for a name that does not
		// exist and for one with only source distributions: ask the index
		// without the wheel-only filter.
		args := append([]string{"index", "versions", "--disable-pip-version-check", reqName(spec)}, in.indexArgs()...)
		if _, ierr := in.run(ctx, py, "pip index versions", args...); ierr == nil {
			return noWheel(spec)
		}
		return notFound(reqName(spec))
	}
	what := "installing " + req
	if vendoring {
		what = "vendoring " + req + " for " + target
	}
	return problem.Wrap(err, "make every requirement installable (set wheel-dir or pip-index-url when PyPI is unreachable)"+remote, "%s", what)
}

// where names the index for messages, without any password in its URL.
func (in *installer) where() string {
	switch {
	case in.opt.WheelDir != "":
		return "wheel-dir " + in.opt.WheelDir
	case in.opt.PipIndexURL != "":
		return redactURL(in.opt.PipIndexURL)
	}
	return "PyPI"
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// checkIndex asks pip-index-url for anything before a build starts, so an
// index that does not answer fails in seconds with its own message rather
// than after pip's retries, and nothing is built.
func checkIndex(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return problem.Usagef("give the index's full URL, e.g. https://pkgs.dev.azure.com/ORG/_packaging/FEED/pypi/simple/",
			"pip-index-url %q is not an http(s) URL", redactURL(raw))
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return problem.Usagef("give the index's full URL", "pip-index-url %s: %v", redactURL(raw), err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return problem.Failf("check the URL and the network (a proxy needs HTTPS_PROXY), or vendor from a folder with wheel-dir",
			"the package index %s does not answer: %v", redactURL(raw), err)
	}
	resp.Body.Close()
	return nil
}

// refusePyprojectOnly: App Service's build (Oryx) and both installers'
// wheel-only modes read requirements.txt; a project that declares its
// dependencies only in pyproject.toml would deploy without them.
func refusePyprojectOnly(proj *Project) error {
	if proj.Requirements == "requirements.txt" {
		return nil
	}
	return problem.Usagef("export the dependencies to requirements.txt next to manage.py (uv export --no-hashes -o requirements.txt, or pip-compile -o requirements.txt pyproject.toml) and commit it",
		"%s has no requirements.txt, only pyproject.toml: App Service installs requirements.txt and djdeploy vendors from it", proj.Name)
}

// requirementNames reads the distribution names of a requirements file,
// following -r/-c includes. complete is false when a line names something
// only an installer can resolve (a path, a URL, -e), whose name may be any.
func requirementNames(dir, file string) (names map[string]bool, complete bool, err error) {
	names = map[string]bool{}
	complete = true
	seen := map[string]bool{}
	var read func(p string) error
	read = func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var cont string
		for sc.Scan() {
			line := cont + sc.Text()
			cont = ""
			if strings.HasSuffix(line, "\\") {
				cont = strings.TrimSuffix(line, "\\")
				continue
			}
			if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case strings.HasPrefix(line, "-r ") || strings.HasPrefix(line, "--requirement"):
				inc := strings.TrimSpace(strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(line, "--requirement"), "-r"), "= "))
				if err := read(filepath.Join(filepath.Dir(p), inc)); err != nil {
					return err
				}
			case strings.HasPrefix(line, "-e") || strings.HasPrefix(line, "--editable"):
				complete = false
			case strings.HasPrefix(line, "-"):
				// index options, -c constraints: no requirement
			default:
				name := reqName(line)
				if name == "" || strings.ContainsAny(name, "/\\:") {
					complete = false
					continue
				}
				names[name] = true
			}
		}
		return sc.Err()
	}
	if err := read(filepath.Join(dir, file)); err != nil {
		return nil, false, err
	}
	return names, complete, nil
}

var reqNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)

// reqName is the normalised (PEP 503) name of a requirement line.
func reqName(line string) string {
	m := reqNameRe.FindString(strings.TrimSpace(line))
	if m == "" {
		return ""
	}
	return normName(m)
}

var normRe = regexp.MustCompile(`[-_.]+`)

func normName(s string) string { return strings.ToLower(normRe.ReplaceAllString(s, "-")) }

// vendoredDists lists the distributions installed into a --target folder
// by their .dist-info folders.
func vendoredDists(dir string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() && strings.HasSuffix(n, ".dist-info") {
			base := strings.TrimSuffix(n, ".dist-info")
			if i := strings.LastIndex(base, "-"); i > 0 {
				base = base[:i]
			}
			out[normName(base)] = true
		}
	}
	return out
}

// checkServer fails the build when the app could not start on App Service:
// the auto startup command runs gunicorn with uvicorn's worker, from the
// packages the release ships or App Service installs.
func checkServer(have map[string]bool, from string, proj *Project) error {
	var missing []string
	for _, p := range serverPackages {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return problem.Usagef(fmt.Sprintf("add %s to %s (App Service's startup command runs gunicorn -k uvicorn.workers.UvicornWorker)", strings.Join(missing, " and "), proj.Requirements),
		"%s lacks %s: the app could not start on App Service", from, strings.Join(missing, " and "))
}

// checkServerRequirements is checkServer on requirements.txt's names, for
// remote mode (App Service installs exactly those). A file with entries
// whose names only an installer knows is given the benefit of the doubt.
func checkServerRequirements(proj *Project) error {
	names, complete, err := requirementNames(proj.Dir, proj.Requirements)
	if err != nil {
		return problem.Usagef("fix the requirements file's includes", "reading %s: %v", proj.Requirements, err)
	}
	if !complete && !(names["gunicorn"] && names["uvicorn"]) {
		return nil
	}
	return checkServer(names, proj.Requirements, proj)
}

// startableASGI is the ASGI module the auto startup command serves. A
// project without one ('wagtail start' writes only wsgi.py) would deploy
// and then fail to start, so the build stops with the file to add.
func startableASGI(proj *Project, asgiApplication string) (string, error) {
	asgi, found := asgiModule(proj.Dir, proj.SettingsModule, asgiApplication)
	if found {
		return asgi, nil
	}
	file := strings.ReplaceAll(asgi, ".", "/") + ".py"
	return "", problem.Usagef(fmt.Sprintf("add %s as 'django-admin startproject' writes it (os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", %q); application = get_asgi_application()), or set ASGI_APPLICATION in the settings", file, proj.SettingsModule),
		"%s has no %s: App Service's startup command runs gunicorn with uvicorn's worker on %s:application, so the app could not start", proj.Name, file, asgi)
}

// MissingServerPackages lists which of gunicorn and uvicorn the project's
// requirements.txt (with its includes) does not name: the packages App
// Service's auto startup command imports. ok is false when the file cannot
// tell (no requirements.txt, or entries only an installer can name).
func MissingServerPackages(proj *Project) (missing []string, ok bool) {
	if proj.Requirements != "requirements.txt" {
		return nil, false
	}
	names, complete, err := requirementNames(proj.Dir, proj.Requirements)
	if err != nil {
		return nil, false
	}
	for _, p := range serverPackages {
		if !names[p] {
			missing = append(missing, p)
		}
	}
	if !complete && len(missing) > 0 {
		return nil, false
	}
	return missing, true
}
