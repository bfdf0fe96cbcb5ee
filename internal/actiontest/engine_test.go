package actiontest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

// engine is a private dockerd: its image store persists under
// .tools/actiontest/docker so the base images, the action's image layers and
// act's job images survive between runs (a second run builds nothing it
// already has); its socket and exec root are the test's own and go away.
type engine struct {
	host string // DOCKER_HOST
	env  []string
}

// requireTools returns the tools the test needs, or fails (CI=true) / skips.
func requireTools(t *testing.T, root string) (act string) {
	t.Helper()
	for _, b := range []string{"dockerd", "docker", "mmdebstrap"} {
		if _, err := exec.LookPath(b); err != nil {
			testenv.Missing(t, b, "run 'bash .ci/act-deps.sh' (Debian's docker.io and mmdebstrap)")
		}
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "a private dockerd (its own data root, socket and network namespace) needs root: run the suite as root")
	}
	act = filepath.Join(root, ".tools", "bin", "act")
	if _, err := os.Stat(act); err != nil {
		testenv.Missing(t, act, "run 'bash .ci/act-deps.sh' (go install github.com/nektos/act@v0.2.89 into .tools/bin)")
	}
	return act
}

// startEngine starts dockerd and stops it (by its pid) at cleanup. One test
// binary at a time may use the persistent data root: a lock file serializes
// runs from several worktrees' shells.
func startEngine(t *testing.T, root string) *engine {
	t.Helper()
	store := filepath.Join(root, ".tools", "actiontest", "docker")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(root, ".tools", "actiontest", "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })

	// Short paths: a unix socket path is limited to 108 bytes.
	run, err := os.MkdirTemp("", "djd-act-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(run, "docker.sock")
	exe := filepath.Join(run, "exec")
	logf, err := os.Create(filepath.Join(run, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dockerd",
		"--data-root="+store, "--exec-root="+exe, "--pidfile="+filepath.Join(run, "dockerd.pid"),
		"-H", "unix://"+sock, "--storage-driver=overlay2",
		"--iptables=false", "--ip-forward=false", "--bridge=none")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// dockerd leaves its default network namespace mounted.
		_ = syscall.Unmount(filepath.Join(exe, "netns", "default"), syscall.MNT_DETACH)
		logf.Close()
		if !t.Failed() {
			os.RemoveAll(run)
		} else {
			t.Logf("dockerd's log and state are kept in %s", run)
		}
	})
	e := &engine{host: "unix://" + sock}
	e.env = append(os.Environ(), "DOCKER_HOST="+e.host)
	for i := 0; ; i++ {
		if _, err := e.docker(context.Background(), nil, "version"); err == nil {
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited:\n%s", log)
		case <-time.After(500 * time.Millisecond):
		}
		if i > 240 {
			t.Fatalf("dockerd did not answer on %s in 2 minutes", sock)
		}
	}
	// The image store persists, and so would containers and volumes an
	// interrupted run left (act then cannot reuse their names).
	if ids, err := e.docker(context.Background(), nil, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		_, _ = e.docker(context.Background(), nil, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	_, _ = e.docker(context.Background(), nil, "volume", "prune", "-f")
	return e
}

// docker runs the docker CLI against the engine.
func (e *engine) docker(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = e.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (e *engine) has(image string) bool {
	_, err := e.docker(context.Background(), nil, "image", "inspect", image)
	return err == nil
}

// sh runs a shell pipeline with the engine's environment.
func (e *engine) sh(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// Libraries the Python stage's interpreter (pyenv's, built on Debian 12)
// loads; python:3.12-slim-bookworm carries the same.
const debianPackages = "ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,libgdbm6,libexpat1"

// baseImages makes, once, the images the Dockerfile names and act's job
// image: debian:bookworm from mmdebstrap; the Go stage from this machine's
// Go with a file module proxy (build containers have no network); the
// Python stage from pyenv's 3.12.
func baseImages(t *testing.T, e *engine, root string) {
	t.Helper()
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var goImage, pyImage string
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(df), -1) {
		switch {
		case strings.HasPrefix(m[1], "golang:"):
			goImage = m[1]
		case strings.HasPrefix(m[1], "python:"):
			pyImage = m[1]
		}
	}
	if goImage == "" || pyImage == "" {
		t.Fatalf("the Dockerfile names no golang: or python: image")
	}
	work := t.TempDir()

	if !e.has("debian:bookworm") {
		mirror := "http://deb.debian.org/debian"
		e.sh(t, work, fmt.Sprintf(`mmdebstrap --quiet --variant=minbase --mode=root --include=%s bookworm - %s | docker import -c 'CMD ["bash"]' - debian:bookworm`, debianPackages, mirror))
	}

	// The Go stage carries a module proxy of go.sum's modules: it is made
	// again when go.sum changes (a new dependency is not in the old one).
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	goSum := fmt.Sprintf("%x", sha256.Sum256(sum))[:16]
	if label, err := e.docker(context.Background(), nil, "image", "inspect", "-f", `{{index .Config.Labels "djdeploy.gosum"}}`, goImage); err != nil || strings.TrimSpace(label) != goSum {
		// The machine's Go must be the one the tag names.
		want := strings.SplitN(strings.TrimPrefix(goImage, "golang:"), "-", 2)[0]
		if v := strings.TrimPrefix(runtime.Version(), "go"); v != want {
			t.Fatalf("the Dockerfile builds with Go %s, this machine has %s: the local %s would not be that image", want, v, goImage)
		}
		ctx := filepath.Join(work, "go")
		gomod := filepath.Join(work, "gomodcache")
		e.sh(t, root, fmt.Sprintf(`
mkdir -p %[1]s
cp -al "$(go env GOROOT)" %[1]s/go
GOFLAGS=-modcacherw GOMODCACHE=%[2]s GOPROXY="file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)" go mod download
cp -al %[2]s/cache/download %[1]s/goproxy
cat > %[1]s/Dockerfile <<'DF'
FROM debian:bookworm
COPY go /usr/local/go
COPY goproxy /goproxy
ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOPATH=/go GOTOOLCHAIN=local GOPROXY=file:///goproxy
LABEL djdeploy.gosum=%[4]s
DF
docker build -q -t %[3]s %[1]s`, ctx, gomod, goImage, goSum))
	}

	if !e.has(pyImage) {
		var py string
		for _, c := range []string{os.Getenv("HOME") + "/.pyenv/versions/3.12.*"} {
			if m, _ := filepath.Glob(c); len(m) > 0 {
				py = m[len(m)-1]
			}
		}
		if py == "" {
			testenv.Missing(t, "a Python 3.12 under ~/.pyenv/versions", "install one with pyenv (the Dockerfile's python: stage is made from it)")
		}
		ctx := filepath.Join(work, "py")
		e.sh(t, root, fmt.Sprintf(`
mkdir -p %[1]s/usr
for d in bin lib include; do cp -al %[2]s/$d %[1]s/usr/$d; done
rm -rf %[1]s/usr/lib/python3.12/test
cat > %[1]s/Dockerfile <<'DF'
FROM debian:bookworm
COPY usr /usr/local
RUN grep -rlI '^#!%[2]s' /usr/local/bin | xargs -r sed -i '1s|^#!.*python.*|#!/usr/local/bin/python3|' \
 && echo /usr/local/lib > /etc/ld.so.conf.d/python.conf && ldconfig \
 && python3 -c "import ssl, sqlite3, venv, ensurepip"
ENV LANG=C.UTF-8
CMD ["python3"]
DF
docker build -q -t %[3]s %[1]s`, ctx, py, pyImage))
	}
}
