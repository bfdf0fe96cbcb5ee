package emulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// antenv is the name App Service's build gives the app's virtualenv; the
// app starts from it.
const antenv = "antenv"

// oryxTimeout bounds one build's pip install and collectstatic.
const oryxTimeout = 15 * time.Minute

// oryxBuild does what App Service's build (Oryx) does for a Python app when
// SCM_DO_BUILD_DURING_DEPLOYMENT is true: a virtualenv "antenv" made with the
// runtime's Python, `pip install -r requirements.txt` from the index the app
// settings name (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL; PyPI by default),
// `python manage.py collectstatic --noinput` unless DISABLE_COLLECTSTATIC is
// true, and the PRE_BUILD_COMMAND / POST_BUILD_COMMAND hooks around them. The app then starts from antenv (startInstance), so it imports what
// pip installed, not the emulator's own packages.
//
// A virtualenv is kept in the build cache by what made it (interpreter,
// requirements.txt, index settings) and linked into each release that needs
// the same one: on App Service pip's cache makes a repeated build quick;
// here the packages the app imports are the same either way, and a test
// suite of many releases does not pay a full install for each.
//
// It returns "" on success, else the failure and the log lines that show it
// (pip's own errors).
func (e *Emulator) oryxBuild(ctx context.Context, py, dir string, settings map[string]string, logf func(typ int, format string, args ...any)) (string, []string) {
	req, err := os.ReadFile(filepath.Join(dir, "requirements.txt"))
	if err != nil {
		return "Could not find requirements.txt: Oryx cannot build a Python app without it",
			[]string{"Could not detect any platform in the source directory (no requirements.txt)."}
	}
	ctx, cancel := context.WithTimeout(ctx, oryxTimeout)
	defer cancel()

	version, err := exec.CommandContext(ctx, py, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])").Output()
	if err != nil {
		return "Oryx build failed: the runtime's Python " + py + " does not run: " + err.Error(), nil
	}
	logf(0, "Python Version: %s (%s)", strings.TrimSpace(string(version)), py)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", py, version, settings["PIP_INDEX_URL"], settings["PIP_EXTRA_INDEX_URL"], settings["PRE_BUILD_COMMAND"])
	h.Write(req)
	key := hex.EncodeToString(h.Sum(nil))[:24]

	root := e.cfg.BuildCache
	if root == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			c = os.TempDir()
		}
		root = filepath.Join(c, "djdeploy", "emulator-antenv")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "Oryx build failed: " + err.Error(), nil
	}
	venv := filepath.Join(root, key)
	unlock, err := lockFile(ctx, venv+".lock")
	if err != nil {
		return "Oryx build failed: waiting for the build cache: " + err.Error(), nil
	}
	defer unlock()

	done := filepath.Join(venv, ".djdeploy-complete")
	// Oryx's hooks run in the source folder with the app settings as
	// environment: PRE_BUILD_COMMAND before the install (it may change what
	// is installed, so it is part of the cache key), POST_BUILD_COMMAND
	// after collectstatic.
	if msg, lines := hook(ctx, dir, settings, "PRE_BUILD_COMMAND", logf); msg != "" {
		return msg, lines
	}
	if fileExists(done) {
		logf(0, "Virtual environment %s: reusing the one built from the same requirements.txt with the same Python and index.", antenv)
	} else {
		logf(0, "Creating virtual environment %s with %s...", antenv, py)
		_ = os.RemoveAll(venv)
		// The venv is made in place (its scripts name their own path), so
		// it is never moved.
		if out, err := run(ctx, dir, nil, py, "-m", "venv", venv); err != nil {
			return "Oryx build failed: creating the virtual environment: " + err.Error(), tailLines(out, 20)
		}
		logf(0, "Running pip install -r requirements.txt...")
		env := os.Environ()
		for _, k := range []string{"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"} {
			if v := settings[k]; v != "" {
				env = append(env, k+"="+v)
			}
		}
		out, err := run(ctx, dir, env, filepath.Join(venv, "bin", "python"), "-m", "pip", "install",
			"--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", "requirements.txt")
		if err != nil {
			_ = os.RemoveAll(venv)
			lines := pipErrors(out)
			first := "see the deployment log"
			if len(lines) > 0 {
				first = lines[len(lines)-1]
			}
			return fmt.Sprintf("Oryx build failed: pip install -r requirements.txt: %s", first), lines
		}
		if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			return "Oryx build failed: " + err.Error(), nil
		}
		logf(0, "pip install -r requirements.txt: done.")
	}
	_ = os.RemoveAll(filepath.Join(dir, antenv))
	if err := os.Symlink(venv, filepath.Join(dir, antenv)); err != nil {
		return "Oryx build failed: " + err.Error(), nil
	}

	switch {
	case isTrue(settings["DISABLE_COLLECTSTATIC"]):
		logf(0, "Skipping collectstatic: DISABLE_COLLECTSTATIC is true.")
	case fileExists(filepath.Join(dir, "manage.py")):
		logf(0, "Running python manage.py collectstatic --noinput...")
		out, err := run(ctx, dir, appEnv(dir, settings), filepath.Join(dir, antenv, "bin", "python"), "manage.py", "collectstatic", "--noinput")
		if err != nil {
			return "Oryx build failed: python manage.py collectstatic --noinput: " + err.Error(), tailLines(out, 30)
		}
	}
	return hook(ctx, dir, settings, "POST_BUILD_COMMAND", logf)
}

// hook runs the build hook the app setting name holds, if any, with sh in
// the release folder, antenv first on PATH once it exists.
func hook(ctx context.Context, dir string, settings map[string]string, name string, logf func(typ int, format string, args ...any)) (string, []string) {
	script := strings.TrimSpace(settings[name])
	if script == "" {
		return "", nil
	}
	logf(0, "Running %s...", name)
	out, err := run(ctx, dir, appEnv(dir, settings), "/bin/sh", "-c", script)
	lines := tailLines(out, 30)
	if err != nil {
		return fmt.Sprintf("Oryx build failed: %s: %v", name, err), lines
	}
	for _, l := range lines {
		logf(0, "%s", l)
	}
	return "", nil
}

// appEnv is the environment of a command run in a release folder with the
// slot's app settings, antenv first on PATH (as App Service activates it).
func appEnv(dir string, settings map[string]string) []string {
	env := []string{
		"PATH=" + filepath.Join(dir, antenv, "bin") + ":" + os.Getenv("PATH"),
		"VIRTUAL_ENV=" + filepath.Join(dir, antenv),
		"HOME=" + dir,
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
	}
	for _, k := range sortedKeys(settings) {
		env = append(env, k+"="+settings[k])
	}
	return env
}

// run runs a build command in dir and returns its combined output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %s", oryxTimeout)
	}
	return out, err
}

// pipErrors is what pip said went wrong: its ERROR lines, else the last
// lines of its output.
func pipErrors(out []byte) []string {
	var errs []string
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); strings.HasPrefix(l, "ERROR:") || strings.HasPrefix(l, "error:") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return tailLines(out, 20)
}

// tailLines is the last n non-empty lines of out.
func tailLines(out []byte, n int) []string {
	var ls []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, l)
		}
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return ls
}

// lockFile takes an exclusive lock on path (created if missing), shared by
// every emulator on the machine, waiting until ctx ends.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
