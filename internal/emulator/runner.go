package emulator

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FailAt says where the next deployment of a slot fails (fault injection).
type FailAt int

const (
	// NoFailure clears a pending deployment fault.
	NoFailure FailAt = iota
	// AtBuild fails the build (deployment status BuildFailed), as Oryx does
	// when a requirement cannot be installed.
	AtBuild
	// AtRuntime makes the app process exit at start (RuntimeFailed).
	AtRuntime
)

func (f FailAt) String() string {
	switch f {
	case AtBuild:
		return "build"
	case AtRuntime:
		return "runtime"
	}
	return "none"
}

// instance is one running release of an app: a process behind a proxy. A
// slot's host routes to its current instance; a swap exchanges instances.
type instance struct {
	release string // deployment id ("" for the empty site)
	dir     string
	port    int
	cmd     *exec.Cmd
	proxy   *httputil.ReverseProxy
	out     *tail
	exited  chan struct{}
	exitErr error
	// unhealthy: 0 healthy; 1 every path answers 503; 2 only paths under
	// sickPath answer 503. It belongs to the release, so it moves with a swap.
	unhealthy atomic.Int32
	sickPath  atomic.Pointer[string]
	stopOnce  sync.Once
}

func emptyInstance() *instance { return &instance{} }

func (in *instance) running() bool {
	if in.cmd == nil {
		return false
	}
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 seconds.
func (in *instance) stop() {
	if in == nil || in.cmd == nil || in.cmd.Process == nil {
		return
	}
	in.stopOnce.Do(func() {
		pid := in.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-in.exited
		}
	})
}

// tail keeps the last bytes of a process's output.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
	f   *os.File
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		_, _ = t.f.Write(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

// lines returns the last n lines.
func (t *tail) lines(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	if len(ls) == 1 && ls[0] == "" {
		return nil
	}
	return ls
}

// runDeployment does a deployment's work after the 202: unpack, optional
// build check, start the app, switch the slot's host to it.
func (e *Emulator) runDeployment(sl *slot, d *deployment, zipPath string) {
	e.mu.Lock()
	d.Start = time.Now().UTC()
	d.Status, d.BuildStatus = kuduBuilding, "BuildInProgress"
	fault := sl.failNext
	sl.failNext = NoFailure
	settings := cloneMap(sl.settings)
	version := sl.pythonVersion()
	d.logf(0, "Updating submodules.")
	d.logf(0, "Preparing deployment for commit id '%s'.", d.ID[:10])
	e.mu.Unlock()

	dir := filepath.Join(sl.dir, "releases", d.ID)
	n, err := unzip(zipPath, dir, e.cfg.MaxUnpackedBytes, e.cfg.MaxEntries)
	_ = os.Remove(zipPath)
	if err != nil {
		// Nothing runs from a release that never built: its folder goes.
		_ = os.RemoveAll(dir)
		msg := "The deployment package is not a valid zip file: " + err.Error()
		if errors.Is(err, errTooLarge) {
			msg = "The deployment package is too large: " + err.Error()
		}
		e.finishDeployment(sl, d, kuduFailed, "BuildFailed", msg, nil)
		return
	}
	e.mu.Lock()
	d.logf(0, "Extracted %d files to /home/site/wwwroot.", n)
	e.mu.Unlock()

	if isTrue(settings["SCM_DO_BUILD_DURING_DEPLOYMENT"]) || fault == AtBuild {
		msg, lines := "Oryx build failed (fault injected by the emulator)",
			[]string{"ERROR: emulator fault: the build was made to fail (FailNextDeployment AtBuild)"}
		if fault != AtBuild {
			if py, err := e.runtimePython(version); err != nil {
				msg, lines = "Oryx build failed: "+err.Error(), []string{err.Error()}
			} else {
				msg, lines = e.oryxBuild(context.Background(), py, dir, settings, func(typ int, format string, args ...any) {
					e.mu.Lock()
					defer e.mu.Unlock()
					d.logf(typ, format, args...)
				})
			}
		}
		if msg != "" {
			e.mu.Lock()
			for _, l := range lines {
				d.logf(2, "%s", l)
			}
			e.mu.Unlock()
			_ = os.RemoveAll(dir)
			e.finishDeployment(sl, d, kuduFailed, "BuildFailed", msg, lines)
			return
		}
		e.mu.Lock()
		d.logf(0, "Build successful: the app starts from %s.", antenv)
		e.mu.Unlock()
	} else {
		e.mu.Lock()
		d.logf(0, "Skipping build: SCM_DO_BUILD_DURING_DEPLOYMENT is not true; the package runs as deployed.")
		e.mu.Unlock()
	}

	e.mu.Lock()
	d.Status, d.BuildStatus = kuduDeploying, "BuildSuccessful"
	d.logf(0, "Deployment successful. Restarting the site.")
	d.BuildStatus = "RuntimeStarting"
	e.mu.Unlock()

	in, err := e.startInstance(sl, dir, d.ID, fault == AtRuntime)
	if err != nil {
		var lines []string
		if in != nil {
			lines = in.out.lines(40)
		}
		e.mu.Lock()
		d.logf(2, "Site failed to start: %v", err)
		for _, l := range lines {
			d.logf(2, "%s", l)
		}
		// The slot now shows App Service's "Application Error" page, as on
		// Azure when the new release cannot start.
		failed := &instance{release: d.ID, dir: dir}
		old := sl.inst.Swap(failed)
		e.mu.Unlock()
		old.stop()
		removeFailedRelease(old)
		e.finishDeployment(sl, d, kuduFailed, "RuntimeFailed", "Site failed to start: "+err.Error(), lines)
		return
	}
	e.mu.Lock()
	old := sl.inst.Swap(in)
	sl.starting = removeInst(sl.starting, in)
	sl.modified = time.Now().UTC()
	e.mu.Unlock()
	old.stop()
	removeFailedRelease(old)
	e.finishDeployment(sl, d, kuduSuccess, "RuntimeSuccessful", "", nil)
}

// lifeline starts the group's watcher (see startInstance): it blocks on fd
// 3 until the emulator's end of the pipe closes, then kills the group. The
// app itself does not keep fd 3, and the watcher keeps none of the app's
// output pipes (cmd.Wait would wait for it).
const lifeline = "(read _ <&3; kill -KILL 0) </dev/null >/dev/null 2>&1 & exec 3<&-; "

// shellJoin quotes args into one shell command; a "sh -c" command is kept
// as its script.
func shellJoin(args []string) string {
	if len(args) == 3 && args[0] == "/bin/sh" && args[1] == "-c" {
		return args[2]
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return "exec " + strings.Join(q, " ")
}

// removeFailedRelease deletes the folder of a release that failed to start
// once a deployment replaces it. A failed release stays while it is the
// slot's content (a settings change restarts it, as on App Service).
func removeFailedRelease(in *instance) {
	if in != nil && in.cmd == nil && in.dir != "" {
		_ = os.RemoveAll(in.dir)
	}
}

func removeInst(l []*instance, in *instance) []*instance {
	out := l[:0]
	for _, x := range l {
		if x != in {
			out = append(out, x)
		}
	}
	return out
}

// finishDeployment records the end of a deployment and frees the slot.
func (e *Emulator) finishDeployment(sl *slot, d *deployment, status int, buildStatus, errMsg string, logs []string) {
	e.mu.Lock()
	d.Status, d.BuildStatus = status, buildStatus
	d.End = time.Now().UTC()
	d.Complete = true
	if status == kuduSuccess {
		d.StatusText = ""
		d.logf(0, "Deployment %s succeeded; the site is running the new release.", d.ID)
		for _, x := range sl.deployments {
			x.Active = false
		}
		d.Active = true
	} else {
		d.StatusText = errMsg
		d.logf(2, "Deployment Failed. %s", errMsg)
		d.FailedLogs = logs
		if len(d.FailedLogs) == 0 {
			d.FailedLogs = []string{errMsg}
		}
		d.Errors = []deployError{{Code: buildStatus, Message: errMsg}}
	}
	if sl.busy == d {
		sl.busy = nil
	}
	e.mu.Unlock()
	close(d.done)
	e.logf("kudu: %s deployment %s: %s %s", sl.resourceName(), d.ID, buildStatus, errMsg)
}

func isTrue(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return s == "true" || s == "1" || s == "yes"
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// errTooLarge marks a package over the unpacked size or entry limits.
var errTooLarge = errors.New("over the emulator's limits")

// unzip extracts a package, refusing entries that escape dir, more than
// maxEntries entries, and more than maxBytes unpacked. The bytes are
// counted as written, not taken from the headers, which a zip bomb lies in.
func unzip(zipPath, dir string, maxBytes int64, maxEntries int) (int, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	if len(zr.File) > maxEntries {
		return 0, fmt.Errorf("%w: %d entries, at most %d", errTooLarge, len(zr.File), maxEntries)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	left := maxBytes
	for _, f := range zr.File {
		name := filepath.FromSlash(f.Name)
		target := filepath.Join(dir, name)
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
			return n, fmt.Errorf("entry %q escapes the app folder", f.Name)
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return n, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return n, err
		}
		mode := f.Mode().Perm() | 0o600
		rc, err := f.Open()
		if err != nil {
			return n, err
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			rc.Close()
			return n, err
		}
		w, err := io.Copy(out, io.LimitReader(rc, left+1))
		rc.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
		if left -= w; left < 0 {
			return n, fmt.Errorf("%w: more than %d bytes unpacked", errTooLarge, maxBytes)
		}
		n++
	}
	return n, nil
}

// findASGI finds the Django project package: the folder holding asgi.py
// next to settings.py (or a settings package), nearest the root first.
func findASGI(dir string) (string, error) {
	var found []string
	_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.Count(rel, string(os.PathSeparator)) > 3 || strings.HasPrefix(de.Name(), ".") && rel != "." || de.Name() == "node_modules" || de.Name() == "__pycache__" {
			if rel != "." {
				return filepath.SkipDir
			}
		}
		if fileExists(filepath.Join(p, "asgi.py")) && (fileExists(filepath.Join(p, "settings.py")) || fileExists(filepath.Join(p, "settings", "__init__.py"))) && rel != "." {
			found = append(found, rel)
		}
		return nil
	})
	if len(found) == 0 {
		return "", errors.New("no Django project package found (a folder holding asgi.py next to settings.py); set a startup command (appCommandLine) instead")
	}
	sort.Slice(found, func(i, j int) bool {
		ci, cj := strings.Count(found[i], string(os.PathSeparator)), strings.Count(found[j], string(os.PathSeparator))
		if ci != cj {
			return ci < cj
		}
		return found[i] < found[j]
	})
	return strings.ReplaceAll(found[0], string(os.PathSeparator), ".") + ".asgi", nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// startInstance starts a release's process on a free loopback port with the
// slot's startup command and waits until it answers HTTP. On failure it
// returns the (stopped) instance so the caller can read its output.
func (e *Emulator) startInstance(sl *slot, dir, release string, failRuntime bool) (*instance, error) {
	e.mu.Lock()
	settings := cloneMap(sl.settings)
	command := sl.appCommandLine()
	version := sl.pythonVersion()
	siteName, slotName, rg := sl.site.cfg.Name, sl.name, sl.site.cfg.ResourceGroup
	e.mu.Unlock()

	if e.closed.Load() {
		return nil, errors.New("emulator closed")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var args []string
	switch {
	case failRuntime:
		args = []string{"/bin/sh", "-c", `echo "emulator fault: the app was made to fail at start (FailNextDeployment AtRuntime)" >&2; exit 3`}
	case command != "":
		// App Service runs the app from /home/site/wwwroot; startup commands
		// name it (local dependency mode's PYTHONPATH does), so it stands
		// for this release's folder here.
		args = []string{"/bin/sh", "-c", bindLoopback(strings.ReplaceAll(command, "/home/site/wwwroot", dir))}
	default:
		mod, err := findASGI(dir)
		if err != nil {
			return nil, err
		}
		py, err := e.runtimePython(version)
		if err != nil {
			return nil, err
		}
		if venvPy := filepath.Join(dir, antenv, "bin", "python"); fileExists(venvPy) {
			py = venvPy // built by oryxBuild: the app imports what pip installed
		}
		args = []string{py, "-m", "gunicorn", "--workers", strconv.Itoa(e.cfg.Workers),
			"--bind", "127.0.0.1:" + strconv.Itoa(port), "-k", "uvicorn.workers.UvicornWorker",
			"--timeout", "600", "--access-logfile", "-", "--error-logfile", "-", mod}
	}
	path := filepath.Join(e.stateDir, "bin") + ":" + os.Getenv("PATH")
	if fileExists(filepath.Join(dir, antenv, "bin", "python")) {
		// App Service activates the build's virtualenv: a startup command's
		// gunicorn or python is antenv's.
		path = filepath.Join(dir, antenv, "bin") + ":" + path
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + dir,
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
		"PORT=" + strconv.Itoa(port),
		"WEBSITES_PORT=" + strconv.Itoa(port),
		"WEBSITE_SITE_NAME=" + siteName,
		"WEBSITE_SLOT_NAME=" + slotName,
		"WEBSITE_RESOURCE_GROUP=" + rg,
		"WEBSITE_HOSTNAME=127.0.0.1",
		"WEBSITE_INSTANCE_ID=" + release,
		"APP_PATH=" + dir,
		ownerEnv + "=" + strconv.Itoa(os.Getpid()),
	}
	for _, k := range sortedKeys(settings) {
		env = append(env, k+"="+settings[k])
	}
	logPath := filepath.Join(sl.dir, "logs", firstNonEmpty(release, "restart")+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	lf, _ := os.Create(logPath)
	in := &instance{release: release, dir: dir, port: port, out: &tail{max: 64 << 10, f: lf}, exited: make(chan struct{})}
	// The app runs in its own process group, so stop ends its workers too,
	// and dies with the emulator even when the emulator is SIGKILLed: the
	// direct child gets a parent-death signal, and a watcher in the group
	// reads a pipe only the emulator holds open; at its EOF (the emulator
	// is gone) the watcher kills the whole group, the app a "sh -c" forked
	// included, which no parent-death signal reaches.
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return in, err
	}
	script := lifeline + shellJoin(args)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = in.out, in.out
	cmd.ExtraFiles = []*os.File{lifeR} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	lifeR.Close()
	if err != nil {
		lifeW.Close()
		return in, fmt.Errorf("starting %s: %w", args[0], err)
	}
	in.cmd = cmd
	go func() {
		in.exitErr = cmd.Wait()
		lifeW.Close()
		if lf != nil {
			lf.Close()
		}
		close(in.exited)
		e.logf("app: %s release %s exited: %v", siteName+"/"+slotName, release, in.exitErr)
	}()
	target, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(port))
	in.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			applicationError(w, http.StatusBadGateway)
		},
		ErrorLog: discardLog,
	}
	e.mu.Lock()
	sl.starting = append(sl.starting, in)
	e.mu.Unlock()
	e.logf("app: %s starting release %s on port %d: %s", siteName+"/"+slotName, release, port, strings.Join(args, " "))

	err = e.waitReady(in)
	if err == nil {
		if ex := exposedListeners(port); len(ex) > 0 {
			err = fmt.Errorf("the app listens on %s, reachable from other machines; the emulator runs apps on 127.0.0.1 only: bind $PORT on 127.0.0.1", strings.Join(ex, ", "))
		}
	}
	if err != nil {
		in.stop()
		e.mu.Lock()
		sl.starting = removeInst(sl.starting, in)
		e.mu.Unlock()
		return in, err
	}
	return in, nil
}

// waitReady waits until the process answers any HTTP request on its port.
func (e *Emulator) waitReady(in *instance) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	u := "http://127.0.0.1:" + strconv.Itoa(in.port) + "/"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Host = "127.0.0.1"
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-in.exited:
			return fmt.Errorf("the app process exited at start (%v)", in.exitErr)
		case <-ctx.Done():
			if e.closed.Load() {
				return errors.New("emulator closed")
			}
			return fmt.Errorf("the app did not answer HTTP on its PORT within %s", e.cfg.StartTimeout)
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// restartSlot restarts the slot's current release with its current
// command and settings, as App Service does after a configuration change.
func (e *Emulator) restartSlot(sl *slot, why string) {
	cur := sl.inst.Load()
	if cur == nil || cur.dir == "" {
		return
	}
	e.logf("app: %s restarting (%s)", sl.resourceName(), why)
	in, err := e.startInstance(sl, cur.dir, cur.release, false)
	e.mu.Lock()
	defer func() { e.mu.Unlock() }()
	if err != nil {
		failed := &instance{release: cur.release, dir: cur.dir}
		if sl.inst.CompareAndSwap(cur, failed) {
			go cur.stop()
		}
		return
	}
	sl.starting = removeInst(sl.starting, in)
	if !sl.inst.CompareAndSwap(cur, in) {
		go in.stop() // a deployment or swap moved on meanwhile
		return
	}
	go cur.stop()
}

// siteHandler serves a slot's host: the release it currently holds.
func (e *Emulator) siteHandler(sl *slot) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := sl.inst.Load()
		switch in.unhealthy.Load() {
		case 1:
			applicationError(w, http.StatusServiceUnavailable)
			return
		case 2:
			if p := in.sickPath.Load(); p != nil && strings.HasPrefix(r.URL.Path, *p) {
				applicationError(w, http.StatusServiceUnavailable)
				return
			}
		}
		if in.dir == "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, hostingStart)
			return
		}
		if !in.running() {
			applicationError(w, http.StatusServiceUnavailable)
			return
		}
		in.proxy.ServeHTTP(w, r)
	})
}

const hostingStart = `<!doctype html><title>Your web app is running and waiting for your content</title>
<h1>Your web app is running and waiting for your content</h1><p>djdeploy emulator: nothing has been deployed to this slot yet.</p>
`

func applicationError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, "<!doctype html><title>Application Error</title><h1>:( Application Error</h1>\n")
}

func freePort() (int, error) {
	l, err := listenLoopback(0)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return portOf(l.Addr().String()), nil
}
