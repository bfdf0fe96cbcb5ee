// Package artifact turns a Django project folder into what App Service
// runs: a reproducible app.zip, the collected static files that go to Blob
// Storage, and release.json describing both. It runs the project's own
// manage.py (collectstatic, check --deploy) through a generated settings
// shim, with the environment the app will have rather than the runner's.
package artifact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// Options configure a build. ProjectDir and OutDir are required.
type Options struct {
	ProjectDir string
	OutDir     string
	// Python is the interpreter that runs manage.py ("" = the project's
	// .venv, else python3 on PATH).
	Python string
	// PythonVersion is App Service's runtime version (default 3.12).
	PythonVersion string
	// SettingsModule overrides the one manage.py names.
	SettingsModule string
	// DependencyMode is ModeRemote (default) or ModeLocal.
	DependencyMode string
	// BuildVenv is auto (default: a build virtualenv only when the
	// interpreter cannot import Django), always, or never.
	BuildVenv string
	// KeepVenv is where a build virtualenv is made and left for the caller
	// (a release's pre-swap command runs with it); "" = in the build's work
	// folder, removed when the build ends.
	KeepVenv string
	// WheelDir and PipIndexURL replace PyPI for pip.
	WheelDir    string
	PipIndexURL string
	// Installer is InstallerAuto (uv when found, else pip), InstallerUV or
	// InstallerPip; UV is uv's path ("" = beside the interpreter, else PATH).
	Installer string
	UV        string
	// Env is the environment manage.py runs with, on top of PATH, HOME and
	// LANG: the app settings the app will have. The runner's environment is
	// not passed.
	Env map[string]string
	// Getenv reads the runner's PATH, HOME and LANG (default os.Getenv).
	Getenv func(string) string
	// FailOnCheck makes any check --deploy finding fatal.
	FailOnCheck bool
	// ModTime stamps every zip entry (SOURCE_DATE_EPOCH); zero = 1980-01-01.
	ModTime time.Time
	// Zip tunes the zip writer.
	Zip ZipOptions
}

// Result is what a build produced.
type Result struct {
	Manifest     *Manifest
	OutDir       string // absolute
	ZipPath      string
	StaticDir    string
	ManifestPath string
	Zip          ZipStats
	StaticFiles  int
	StaticBytes  int64
	// Python is the interpreter that ran manage.py (a build venv's, if one
	// was made).
	Python string
	// Venv is the build virtualenv when one was made in KeepVenv.
	Venv string
}

// Names inside the output folder.
const (
	ZipName   = "app.zip"
	StaticDir = "static"
)

// LocalPackagesDir is where local dependency mode vendors packages in the zip.
const LocalPackagesDir = ".python_packages/lib/site-packages"

// localPythonPath is the PYTHONPATH the startup command needs in local mode:
// App Service runs a prebuilt (no Oryx build) app from /home/site/wwwroot.
const localPythonPath = "/home/site/wwwroot/" + LocalPackagesDir

// appServicePlatforms are the wheel platforms pip may pick for App Service's
// Linux Python images. (?) manylinux_2_28 assumes a glibc 2.28+ image,
// true of the Debian bookworm/bullseye based images.
var appServicePlatforms = []string{"manylinux2014_x86_64", "manylinux_2_28_x86_64"}

func (o Options) withDefaults() Options {
	if o.PythonVersion == "" {
		o.PythonVersion = "3.12"
	}
	if o.DependencyMode == "" {
		o.DependencyMode = ModeRemote
	}
	if o.BuildVenv == "" {
		o.BuildVenv = "auto"
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if !o.ModTime.IsZero() {
		o.Zip.ModTime = o.ModTime
	}
	return o
}

var ownOutputs = map[string]bool{ZipName: true, StaticDir: true, ManifestName: true,
	ZipName + ".tmp": true, ManifestName + ".tmp": true}

// prepareOut makes the output folder, refusing folders that hold anything
// but a previous build's outputs: emptying them must never delete user files.
func prepareOut(dir string, proj *Project) (string, error) {
	if dir == "" {
		return "", problem.Usagef("pass --out DIR (an empty or new folder outside the project is best)", "no output folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", problem.Usagef("pass a valid folder with --out", "output folder %s: %v", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", problem.Usagef("pass a folder you can write to with --out", "creating output folder %s: %v", dir, err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return "", problem.Usagef("pass a valid folder with --out", "output folder %s: %v", dir, err)
	}
	if within(abs, proj.Dir) {
		return "", problem.Usagef("pick an output folder outside the project, e.g. --out ../build or a temporary folder",
			"output folder %s contains the project itself", dir)
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return "", problem.Usagef("pass a folder you can read with --out", "output folder %s: %v", dir, err)
	}
	var foreign []string
	for _, e := range ents {
		if !ownOutputs[e.Name()] {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 {
		return "", problem.Usagef("pick a new or empty folder for --out (djdeploy empties it of its outputs on every build)",
			"output folder %s holds files djdeploy did not write (%s)", dir, strings.Join(first(foreign, 3), ", "))
	}
	for name := range ownOutputs {
		if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
			return "", fmt.Errorf("emptying output folder: %w", err)
		}
	}
	return abs, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}

var pyVersionOK = regexp.MustCompile(`^3\.[0-9]{1,2}$`)

// Build runs the whole build. Errors are *problem.Error where the fix is
// known: usage errors (exit 2) for bad input, failures (exit 1) for a
// project whose collectstatic or checks fail.
func Build(ctx context.Context, opt Options, rep progress.Reporter) (*Result, error) {
	if rep == nil {
		rep = progress.Discard
	}
	opt = opt.withDefaults()
	if !pyVersionOK.MatchString(opt.PythonVersion) {
		return nil, problem.Usagef("use the App Service runtime version, e.g. 3.12", "python-version %q is not of the form 3.X", opt.PythonVersion)
	}
	if opt.DependencyMode != ModeRemote && opt.DependencyMode != ModeLocal {
		return nil, problem.Usagef("use remote or local", "dependency-mode %q is not accepted", opt.DependencyMode)
	}
	switch opt.BuildVenv {
	case "auto", "always", "never":
	default:
		return nil, problem.Usagef("use auto, always or never", "build-venv %q is not accepted", opt.BuildVenv)
	}
	if opt.WheelDir != "" {
		abs, err := filepath.Abs(opt.WheelDir)
		if err != nil || !dirExists(abs) {
			return nil, problem.Usagef("point wheel-dir at a folder of .whl files", "wheel folder %s does not exist", opt.WheelDir)
		}
		opt.WheelDir = abs
	}
	if opt.Env == nil {
		opt.Env = map[string]string{}
	}
	settingsModule := opt.SettingsModule
	if settingsModule == "" {
		settingsModule = opt.Env["DJANGO_SETTINGS_MODULE"]
	}

	proj, err := DetectProject(opt.ProjectDir, settingsModule)
	if err != nil {
		return nil, err
	}
	if err := refusePyprojectOnly(proj); err != nil {
		return nil, err
	}
	if opt.DependencyMode == ModeRemote {
		if err := checkServerRequirements(proj); err != nil {
			return nil, err
		}
	}
	if opt.PipIndexURL != "" && opt.WheelDir == "" {
		if err := checkIndex(ctx, opt.PipIndexURL); err != nil {
			return nil, err
		}
	}
	out, err := prepareOut(opt.OutDir, proj)
	if err != nil {
		return nil, err
	}
	rep.Infof("building %s (settings %s, dependencies: %s)", proj.Name, proj.SettingsModule, opt.DependencyMode)

	work, err := os.MkdirTemp("", "djdeploy-build-")
	if err != nil {
		return nil, fmt.Errorf("creating a work folder: %w", err)
	}
	defer os.RemoveAll(work)
	if opt.Zip.TempDir == "" {
		opt.Zip.TempDir = work
	}

	py, err := preparePython(ctx, opt, proj, work, rep)
	if err != nil {
		return nil, err
	}
	// Vendored before manage.py runs: a requirement without a wheel is the
	// likeliest failure of a local build, and costs nothing to find first.
	site := filepath.Join(work, "site-packages")
	if opt.DependencyMode == ModeLocal {
		if err := vendor(ctx, py, proj, site, opt, rep); err != nil {
			return nil, err
		}
	}
	djangoVersion := ""
	staticDir := filepath.Join(out, StaticDir)
	if err := writeShim(work, proj.SettingsModule, staticDir); err != nil {
		return nil, fmt.Errorf("writing the settings shim: %w", err)
	}

	info, err := py.probe(ctx, work)
	if err != nil {
		return nil, pythonProblem(err, proj, "loading settings "+proj.SettingsModule)
	}
	djangoVersion = info.DjangoVersion
	asgi, err := startableASGI(proj, info.ASGIApplication)
	if err != nil {
		return nil, err
	}
	staticRootRel, staticRootAbs, err := staticRoot(proj, info)
	if err != nil {
		return nil, err
	}

	// What goes in the zip: the project, minus excludes and STATIC_ROOT,
	// plus (below) the hashing storage's manifest where STATIC_ROOT is at
	// run time. Listed before Python runs long, so bad links fail fast.
	ex, err := NewExcluder(proj.Dir)
	if err != nil {
		return nil, err
	}
	ex.ExcludeDir(out, "output folder")
	if real, err := filepath.EvalSymlinks(staticRootAbs); err == nil {
		staticRootAbs = real
	}
	ex.ExcludeDir(staticRootAbs, "STATIC_ROOT")
	ents, err := collect(proj.Dir, "", ex, rep.Warnf)
	if err != nil {
		return nil, err
	}
	if err := checkZipHasApp(ents, proj); err != nil {
		return nil, err
	}
	if err := checkStaticSources(ctx, py, proj, work, ex); err != nil {
		return nil, err
	}
	rep.Infof("collecting static files (Django %s, %s)", djangoVersion, shortStorage(info.Storage))
	if _, err := py.run(ctx, "manage.py collectstatic", "manage.py", "collectstatic", "--noinput", "--no-color"); err != nil {
		return nil, pythonProblem(err, proj, "collectstatic")
	}
	static, staticBytes, err := listStatic(staticDir, info.ManifestName)
	if err != nil {
		return nil, err
	}
	rep.Infof("collected %d static files (%s)", len(static), progress.HumanBytes(staticBytes))

	rep.Infof("running manage.py check --deploy")
	checks, err := runChecks(ctx, py, proj)
	if err != nil {
		return nil, err
	}
	// Plain lines: the caller decides how findings surface (the build
	// command warns; CI adapters annotate them on the settings file once).
	for _, c := range checks {
		rep.Infof("check %s (%s): %s", c.ID, c.Level, firstLine(c.Message))
	}
	if opt.FailOnCheck && len(checks) > 0 {
		return nil, problem.Failf("fix the findings above in the settings (or the app settings passed with build-env), or drop --fail-on-check",
			"manage.py check --deploy reported %d finding%s and fail-on-check is set", len(checks), plural(len(checks)))
	}

	// Folders leading to STATIC_ROOT, so the manifest's folder exists.
	if info.ManifestName != "" {
		src := filepath.Join(staticDir, filepath.FromSlash(info.ManifestName))
		if st, err := os.Stat(src); err == nil {
			name := staticRootRel + "/" + info.ManifestName
			ents = append(ents, parentDirs(ents, name)...)
			ents = append(ents, fileEntry{Name: name, Src: src, Size: st.Size(), Mode: 0o644})
		}
	}

	appSettings := map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "true", "DISABLE_COLLECTSTATIC": "true"}
	pythonPath := ""
	if opt.DependencyMode == ModeLocal {
		vex := newVendorExcluder()
		vents, err := collect(site, LocalPackagesDir+"/", vex, rep.Warnf)
		if err != nil {
			return nil, fmt.Errorf("listing vendored packages: %w", err)
		}
		ents = append(ents, parentDirs(nil, LocalPackagesDir+"/x")...)
		ents = append(ents, vents...)
		appSettings = map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "false", "DISABLE_COLLECTSTATIC": "true"}
		pythonPath = localPythonPath
	}
	if err := sortEntries(ents); err != nil {
		return nil, err
	}

	rep.Infof("zipping %d files", countFiles(ents))
	zipPath := filepath.Join(out, ZipName)
	zo := opt.Zip
	zo.Stamp = func(content string) []byte { return []byte(releaseID(content, static) + "\n") }
	zst, err := writeZipFile(ctx, zipPath, ents, zo, rep)
	if err != nil {
		return nil, err
	}

	m := &Manifest{
		Schema:         SchemaVersion,
		Project:        proj.Name,
		GitCommit:      gitCommit(ctx, proj.Dir),
		PythonVersion:  opt.PythonVersion,
		DjangoVersion:  djangoVersion,
		SettingsModule: proj.SettingsModule,
		DependencyMode: opt.DependencyMode,
		StaticURL:      info.StaticURL,
		StaticRoot:     staticRootRel,
		AppZip:         ZipInfo{Path: ZipName, Size: zst.Size, SHA256: zst.SHA256},
		AppSettings:    appSettings,
		StartupHint:    StartupHint{ASGIModule: asgi, PythonPath: pythonPath},
		Checks:         checks,
		Static:         static,
	}
	// The id covers every byte of the zip but its own stamp, and every
	// static file: the same sources give the same id, any change a new one.
	m.ReleaseID = releaseID(zst.ContentSHA256, static)
	manifestPath := filepath.Join(out, ManifestName)
	if err := writeManifest(manifestPath, m); err != nil {
		return nil, err
	}
	rep.Infof("release %s: %s (%d files, %s), %d static files, %s", m.ReleaseID, ZipName, zst.Files, progress.HumanBytes(zst.Size), len(static), ManifestName)
	return &Result{
		Manifest: m, OutDir: out, ZipPath: zipPath, StaticDir: staticDir, ManifestPath: manifestPath,
		Zip: zst, StaticFiles: len(static), StaticBytes: staticBytes, Python: py.exe, Venv: keptVenv(opt, py),
	}, nil
}

// preparePython finds the interpreter, checks it imports Django, and makes
// a build virtualenv when allowed and needed.
func preparePython(ctx context.Context, opt Options, proj *Project, work string, rep progress.Reporter) (*python, error) {
	env := baseEnv(opt.Getenv)
	exe, explicit, err := findPython(opt.Python, proj.Dir, env["PATH"])
	if err != nil {
		return nil, err
	}
	base := &python{exe: exe, dir: proj.Dir, env: envList(env)}
	var py *python
	version, verr := base.djangoVersion(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch {
	case opt.BuildVenv == "always" || (verr != nil && opt.BuildVenv == "auto"):
		dir := filepath.Join(work, "venv")
		if opt.KeepVenv != "" {
			dir = opt.KeepVenv
		}
		py, err = makeVenv(ctx, base, proj, dir, opt, rep)
		if err != nil {
			return nil, err
		}
		if version, verr = py.djangoVersion(ctx); verr != nil {
			return nil, problem.Wrap(verr, "add Django to "+proj.Requirements, "the build virtualenv cannot import Django after installing %s", proj.Requirements)
		}
	case verr != nil:
		how := "set build-venv to auto so djdeploy installs the requirements into a build virtualenv"
		if explicit {
			how = fmt.Sprintf("install the requirements into it (%s -m pip install -r %s), point --python at an interpreter that has them, or %s", exe, proj.Requirements, how)
		}
		return nil, problem.Usagef(how, "python interpreter %s cannot import Django: %s", exe, lastLine(verr))
	default:
		py = base
	}
	rep.Infof("python: %s (Django %s)", py.exe, version)

	// The app's environment: the runner's PATH/HOME/LANG, the app settings
	// given for the build, and what the shim needs.
	appEnv := baseEnv(opt.Getenv)
	if py.venv != "" {
		appEnv["PATH"] = filepath.Join(py.venv, "bin") + string(os.PathListSeparator) + appEnv["PATH"]
		appEnv["VIRTUAL_ENV"] = py.venv
	}
	for k, v := range opt.Env {
		appEnv[k] = v
	}
	if appEnv["SECRET_KEY"] == "" {
		appEnv["SECRET_KEY"] = placeholderSecretKey
		rep.Infof("SECRET_KEY is not among the build's app settings; manage.py sees a placeholder (the app reads its real key from App Service)")
	}
	appEnv["DJANGO_SETTINGS_MODULE"] = shimModule
	pp := work
	if v := opt.Env["PYTHONPATH"]; v != "" {
		pp += string(os.PathListSeparator) + v
	}
	appEnv["PYTHONPATH"] = pp
	appEnv["PYTHONDONTWRITEBYTECODE"] = "1" // never litter the project with __pycache__
	appEnv["PYTHONUNBUFFERED"] = "1"
	appEnv["DJDEPLOY_BUILD"] = "1"
	py.env = envList(appEnv)
	// A traceback or a check message may quote a setting's value (Django
	// prints the offending value); the build-env values must not reach a
	// log, where CI does not know to mask them.
	py.hide = redact.Maskable(opt.Env)
	progress.Mask(rep, py.hide...)
	return py, nil
}

// staticRoot checks the project's STATIC_ROOT is a folder inside it and
// returns it relative (slash form) and absolute.
func staticRoot(proj *Project, info *probeResult) (string, string, error) {
	if info.StaticRoot == nil || *info.StaticRoot == "" {
		return "", "", problem.Usagef("set STATIC_ROOT = BASE_DIR / \"staticfiles\" in "+proj.SettingsModule,
			"STATIC_ROOT is not set in %s; the hashing storage's manifest has nowhere to live at run time", proj.SettingsModule)
	}
	root := *info.StaticRoot
	if !filepath.IsAbs(root) {
		root = filepath.Join(proj.Dir, root)
	}
	root = filepath.Clean(root)
	// Resolve what exists of it, so /tmp vs /private/tmp style links agree.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	rel, err := filepath.Rel(proj.Dir, root)
	if err != nil || !within(proj.Dir, root) || rel == "." {
		return "", "", problem.Usagef("set STATIC_ROOT to a folder inside the project, e.g. BASE_DIR / \"staticfiles\"; djdeploy collects into its own output folder and ships staticfiles.json there",
			"STATIC_ROOT %s is not a folder inside the project %s", *info.StaticRoot, proj.Dir)
	}
	return filepath.ToSlash(rel), root, nil
}

// runChecks runs check --deploy and parses its findings. Django exits
// non-zero when a finding is an error; that is a finding, not a crash.
func runChecks(ctx context.Context, py *python, proj *Project) ([]Check, error) {
	out, err := py.run(ctx, "manage.py check --deploy", "manage.py", "check", "--deploy", "--no-color")
	checks := ParseChecks(out)
	if err != nil {
		var re *runError
		if errors.As(err, &re) && len(checks) > 0 {
			return checks, nil
		}
		return nil, pythonProblem(err, proj, "check --deploy")
	}
	return checks, nil
}

// pythonProblem turns a failed manage.py run into a user-facing failure.
func pythonProblem(err error, proj *Project, what string) error {
	var re *runError
	if errors.As(err, &re) {
		fix := "fix the error above in the project, then build again"
		if strings.Contains(re.tail, "ModuleNotFoundError") || strings.Contains(re.tail, "ImportError") {
			fix = "a module is missing: add it to " + proj.Requirements + ", or check the settings module name"
		}
		return &problem.Error{What: fmt.Sprintf("%s failed for %s (exit %d); Python said:\n%s", what, proj.Name, re.code, indent(re.tail)), Fix: fix}
	}
	return err
}

func parentDirs(existing []fileEntry, name string) []fileEntry {
	have := map[string]bool{}
	for _, e := range existing {
		if e.Src == "" {
			have[e.Name] = true
		}
	}
	var out []fileEntry
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			d := name[:i+1]
			if !have[d] {
				out = append(out, fileEntry{Name: d, Mode: os.ModeDir | 0o755})
				have[d] = true
			}
		}
	}
	return out
}

func countFiles(ents []fileEntry) int {
	n := 0
	for _, e := range ents {
		if e.Src != "" {
			n++
		}
	}
	return n
}

// gitCommit returns HEAD of the repository holding dir, or "".
func gitCommit(ctx context.Context, dir string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "-q", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func shortStorage(s string) string {
	if i := strings.LastIndex(s, "."); i >= 0 {
		return s[i+1:]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(err error) string {
	var re *runError
	if errors.As(err, &re) {
		return tailLines(re.tail, 1)
	}
	return err.Error()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// keptVenv is the build virtualenv the caller keeps, if one was made there.
func keptVenv(opt Options, py *python) string {
	if opt.KeepVenv != "" && py.venv == opt.KeepVenv {
		return py.venv
	}
	return ""
}
