//go:build bench

// The dependency step of a local-mode build, uv against pip, cold cache
// (an empty HOME, so neither tool has downloaded anything) and warm (the
// same HOME again), on a realistic requirements set with compiled
// packages (internal/artifact/testdata/requirements-realistic.txt). Each
// build runs in a child process so its peak RSS, which includes the uv or
// pip it waited for, is its own. Then whole releases (build to live) on
// the emulator in local mode against remote mode. Reports wall times,
// ratios and peak memory; asserts no timing.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

const depsChildEnv = "DJDEPLOY_BENCH_DEPS_CHILD" // "installer|home|project|out|python|uv"

// TestBenchLocalDeps builds the example app with the realistic set in
// local mode: uv and pip, cold and warm.
func TestBenchLocalDeps(t *testing.T) {
	if spec := os.Getenv(depsChildEnv); spec != "" {
		depsChild(t, spec)
		return
	}
	py := testenv.Python(t)
	root := repoRoot(t)
	uvPath := testenv.UV(t)
	reqs, err := os.ReadFile(filepath.Join(root, "internal", "artifact", "testdata", "requirements-realistic.txt"))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		cold, warm     time.Duration
		coldKB, warmKB int64
	}
	results := map[string]result{}
	// "remote" is the same build without vendoring: the baseline the
	// dependency step is measured against.
	for _, inst := range []string{"remote", artifact.InstallerUV, artifact.InstallerPip} {
		home := t.TempDir() // an empty cache
		var r result
		for i, warm := range []bool{false, true} {
			project := e2e.Project(t, fmt.Sprintf("app-%s-%d", inst, i))
			if err := os.WriteFile(filepath.Join(project, "requirements.txt"), reqs, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBenchLocalDeps$", "-test.v")
			cmd.Env = append(os.Environ(), depsChildEnv+"="+strings.Join([]string{inst, home, project, out, py, uvPath}, "|"))
			start := time.Now()
			b, err := cmd.CombinedOutput()
			wall := time.Since(start)
			if err != nil {
				t.Fatalf("%s build (warm=%v): %v\n%s", inst, warm, err, b)
			}
			kb := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
			if warm {
				r.warm, r.warmKB = wall, kb
			} else {
				r.cold, r.coldKB = wall, kb
			}
		}
		results[inst] = r
	}
	uv, pip, remote := results[artifact.InstallerUV], results[artifact.InstallerPip], results["remote"]
	t.Logf("local-mode build of the example app + %d requirements (psycopg[binary], Pillow, cryptography, ...), wall time and peak RSS:", strings.Count(string(reqs), "\n")-2)
	t.Logf("  %-6s %10s %10s %12s %12s", "tool", "cold", "warm", "cold peak", "warm peak")
	for _, name := range []string{"remote", "uv", "pip"} {
		r := results[name]
		t.Logf("  %-6s %10s %10s %9d MB %9d MB", name, r.cold.Round(10*time.Millisecond), r.warm.Round(10*time.Millisecond), r.coldKB/1024, r.warmKB/1024)
	}
	step := func(d, base time.Duration) float64 { return max(d-base, 10*time.Millisecond).Seconds() }
	t.Logf("  dependency step (local build - remote build): uv cold %.1fs warm %.1fs, pip cold %.1fs warm %.1fs",
		step(uv.cold, remote.cold), step(uv.warm, remote.warm), step(pip.cold, remote.cold), step(pip.warm, remote.warm))
	t.Logf("  pip/uv, dependency step: cold %.1fx, warm %.1fx; whole build: cold %.1fx, warm %.1fx",
		step(pip.cold, remote.cold)/step(uv.cold, remote.cold), step(pip.warm, remote.warm)/step(uv.warm, remote.warm),
		pip.cold.Seconds()/uv.cold.Seconds(), pip.warm.Seconds()/uv.warm.Seconds())
}

// depsChild runs one build in this process (the parent measures it).
func depsChild(t *testing.T, spec string) {
	p := strings.Split(spec, "|")
	inst, home, project, out, py, uv := p[0], p[1], p[2], p[3], p[4], p[5]
	getenv := func(k string) string {
		if k == "HOME" {
			return home
		}
		if k == "UV_CACHE_DIR" || k == "PIP_CACHE_DIR" || k == "XDG_CACHE_HOME" {
			return ""
		}
		return os.Getenv(k)
	}
	opt := artifact.Options{ProjectDir: project, OutDir: out, Python: py, DependencyMode: artifact.ModeLocal, Installer: inst, Getenv: getenv}
	if inst == "remote" {
		opt.DependencyMode, opt.Installer = artifact.ModeRemote, ""
	}
	if inst == artifact.InstallerUV {
		opt.UV = uv
	}
	res, err := artifact.Build(context.Background(), opt, progress.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d files in app.zip", inst, res.Zip.Files)
}

// TestBenchReleaseModes times one whole release (build, static sync,
// deploy, warm-up, swap, purge) of the example app with the realistic set,
// in local mode (wheels vendored by the build) against remote mode (the
// emulator's Oryx-like build: a fresh antenv and pip install -r
// requirements.txt on the server, pip's cache warm as App Service's would
// be after a first build), on an emulator whose runtime is a bare CPython
// 3.12. The release runs as the built binary, so its peak RSS is its own;
// the remote build's pip runs on the server side and is not in it.
func TestBenchReleaseModes(t *testing.T) {
	py := e2e.Require(t, "release benchmark")
	base := testenv.BasePython(t)
	bin := e2e.Binary(t)
	root := repoRoot(t)
	reqs, err := os.ReadFile(filepath.Join(root, "internal", "artifact", "testdata", "requirements-realistic.txt"))
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		wall time.Duration
		kb   int64
	}
	results := map[string]run{}
	for _, mode := range []string{"local", "remote", "local", "remote"} {
		// A fresh emulator per release: remote mode's virtualenv cache
		// starts empty each time, as each Oryx build makes its own.
		emu, err := emulator.Start(context.Background(), emulator.Config{StartAzurite: true, Python: base, Workers: 1, RetryAfter: 1, BuildCache: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		env := e2e.Env(emu, py)
		project := e2e.Project(t, "django-app")
		if err := os.WriteFile(filepath.Join(project, "requirements.txt"), reqs, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "release", "--project", project, "--dependency-mode", mode, "--fix-settings",
			"--health-path", "/healthz", "--warmup-timeout", "120s", "--deploy-timeout", "15m")
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		emu.Close()
		if err != nil {
			t.Fatalf("release in %s mode: %v\n%s", mode, err, out)
		}
		r := run{wall: wall, kb: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss}
		t.Logf("release in %s mode: %s, djdeploy's peak RSS %d MB", mode, wall.Round(10*time.Millisecond), r.kb/1024)
		// The first run of each mode warms pip's and uv's caches; the
		// second is the one reported.
		results[mode] = r
	}
	l, rm := results["local"], results["remote"]
	t.Logf("whole release, build to live, realistic requirements (warm caches):")
	t.Logf("  %-7s %10s %14s", "mode", "wall", "djdeploy peak")
	t.Logf("  %-7s %10s %11d MB", "local", l.wall.Round(10*time.Millisecond), l.kb/1024)
	t.Logf("  %-7s %10s %11d MB", "remote", rm.wall.Round(10*time.Millisecond), rm.kb/1024)
	t.Logf("  remote/local: %.2fx", rm.wall.Seconds()/l.wall.Seconds())
}
