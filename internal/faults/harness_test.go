package faults

// The world the fault matrix releases into: one emulator (ARM, Kudu, CDN,
// app hosts running gunicorn with one worker), our own Azurite (so a cell
// can kill it and restart it on the same folder and port), and a BlobProxy
// in front of Azurite that djdeploy's storage connection string points at.
// The CDN reads Azurite directly, as Azure's CDN reads the origin and not
// the client's path to it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

const (
	appName  = "demo-app"
	slotName = "staging"
)

type world struct {
	emu    *emulator.Emulator
	proxy  *BlobProxy
	py     string
	env    map[string]string
	blob   *azblob.Client // straight to Azurite
	cont   string
	prefix string
	http   *http.Client
	dir    string // the project the releases build

	azMu   sync.Mutex
	azDown bool
	az     *azurite.Server
	azDir  string
	azPort int

	binOnce sync.Once
	bin     string
	binErr  error
}

func newWorld(t *testing.T) *world {
	t.Helper()
	py := e2e.Require(t, "fault matrix: end-to-end releases")
	w := &world{py: py, http: &http.Client{Timeout: 20 * time.Second}}
	w.azDir = t.TempDir()
	port, err := azurite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w.azPort = port
	if w.az, err = azurite.Start(context.Background(), azurite.Options{Dir: w.azDir, Port: port}); err != nil {
		t.Fatalf("starting azurite: %v", err)
	}
	t.Cleanup(func() {
		w.azMu.Lock()
		defer w.azMu.Unlock()
		_ = w.az.Stop()
	})
	w.emu, err = emulator.Start(context.Background(), emulator.Config{
		AzuriteConnectionString: w.az.ConnectionString(), Python: py, Workers: 1, RetryAfter: 1,
		StartTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { w.emu.Close() })
	if w.proxy, err = NewBlobProxy(w.az.BlobEndpoint()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.proxy.Close() })
	w.env = w.emu.Env()
	w.env["DJDEPLOY_PYTHON"] = py
	w.env["AZURE_STORAGE_CONNECTION_STRING"] = w.proxy.ConnectionString(w.az.ConnectionString())
	w.cont, w.prefix = w.env["DJDEPLOY_STATIC_CONTAINER"], w.env["DJDEPLOY_STATIC_PREFIX"]
	if w.blob, err = azblob.NewClientFromConnectionString(w.az.ConnectionString(), nil); err != nil {
		t.Fatal(err)
	}
	w.dir = e2e.Project(t, "django-app")
	return w
}

// killAzurite stops Azurite abruptly, keeping its data.
func (w *world) killAzurite() {
	w.azMu.Lock()
	defer w.azMu.Unlock()
	w.az.Kill()
	w.azDown = true
}

// startAzurite starts Azurite again on the same folder and port (if it
// was killed).
func (w *world) startAzurite() error {
	w.azMu.Lock()
	defer w.azMu.Unlock()
	if !w.azDown {
		return nil
	}
	s, err := azurite.Start(context.Background(), azurite.Options{Dir: w.azDir, Port: w.azPort})
	if err != nil {
		return err
	}
	w.az, w.azDown = s, false
	return nil
}

// outage takes Azurite down when an upload's path contains trigger, and
// starts it again restartAfter later (< 0: the test restarts it).
//
// Azurite keeps its metadata in memory and saves it every 5 s, so a
// SIGKILL loses the last seconds of acknowledged writes, which Azure never
// does. So every request is held for 6 s first, until everything
// acknowledged is on disk; the requests held, and any during the outage,
// then meet the dead Azurite (dropped connections), as they would meet an
// unreachable Blob service.
func (w *world) outage(trigger string, restartAfter time.Duration) <-chan error {
	var holding atomic.Bool
	killed := make(chan struct{})
	done := make(chan error, 1)
	w.proxy.Add(Rule{Method: http.MethodPut, PathContains: trigger, Before: func(*http.Request) {
		holding.Store(true)
		time.Sleep(6 * time.Second)
		w.killAzurite()
		close(killed)
		if restartAfter < 0 {
			done <- nil
			return
		}
		go func() {
			time.Sleep(restartAfter)
			done <- w.startAzurite()
		}()
	}})
	w.proxy.Add(Rule{Match: func(*http.Request) bool { return holding.Load() }, Count: -1,
		Before: func(*http.Request) { <-killed }})
	return done
}

// vary gives the project a new release id: a template marker and a static
// file of the cell's own, so static sync has something new to upload.
func (w *world) vary(t *testing.T, tag string, extraFiles int) {
	t.Helper()
	p := filepath.Join(w.dir, "pages/templates/pages/home.html")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`<!-- cell [^>]*-->\n?`).ReplaceAllString(string(b), "")
	if err := os.WriteFile(p, []byte(s+"<!-- cell "+tag+" -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cells := filepath.Join(w.dir, "pages/static/pages/cells")
	_ = os.RemoveAll(cells)
	if err := os.MkdirAll(cells, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cells, "cell.css"), []byte(".cell::after { content: \""+tag+"\"; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < extraFiles; i++ {
		body := fmt.Sprintf("/* %s %d */\n.c%d { margin: %dpx; }\n", tag, i, i, i)
		if err := os.WriteFile(filepath.Join(cells, fmt.Sprintf("f%03d.css", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// result is one djdeploy invocation.
type result struct {
	code           int
	stdout, stderr string
	rep            *report.Release
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, tail(r.stdout, 40), tail(r.stderr, 40))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// releaseArgs keep failure paths short (retries still run in full); no
// assertion is made on time.
func (w *world) releaseArgs(more ...string) []string {
	return append([]string{"release", "--project", w.dir, "--fix-settings", "--json",
		"--health-path", "/healthz", "--warmup-timeout", "15s", "--verify-timeout", "15s",
		"--deploy-timeout", "90s", "--swap-timeout", "90s", "--purge-timeout", "60s", "--lock-timeout", "90s"}, more...)
}

// release runs `djdeploy release --json` in-process.
func (w *world) release(ctx context.Context, extra map[string]string, more ...string) result {
	r := e2e.Main(ctx, e2e.With(w.env, extra), w.releaseArgs(more...)...)
	return decode(r.Code, r.Stdout, r.Stderr)
}

func decode(code int, stdout, stderr string) result {
	r := result{code: code, stdout: stdout, stderr: stderr}
	if strings.TrimSpace(stdout) != "" {
		rep := &report.Release{}
		if ok, err := e2e.DecodeResult(stdout, rep); err == nil && ok {
			r.rep = rep
		}
	}
	return r
}

// binary builds cmd/djdeploy once for the process-kill cells.
func (w *world) binary(t *testing.T) string {
	t.Helper()
	w.binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "djdeploy-faults-bin-")
		if err != nil {
			w.binErr = err
			return
		}
		w.bin = filepath.Join(dir, "djdeploy")
		out, err := exec.Command("go", "build", "-o", w.bin, "../../cmd/djdeploy").CombinedOutput()
		if err != nil {
			w.binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if w.binErr != nil {
		t.Fatal(w.binErr)
	}
	return w.bin
}

// command is `djdeploy release` as a child process (for SIGKILL).
func (w *world) command(t *testing.T, ctx context.Context, more ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	c := exec.CommandContext(ctx, w.binary(t), w.releaseArgs(more...)...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	c.Env = env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	return c, &out, &errb
}

// ---- what production serves

// serving checks that production serves a complete release: its page
// names a release, and every static file the page links (and every url()
// in those css files) answers 200 through the CDN endpoint with the right
// content type. It returns the release id production serves.
func (w *world) serving() (string, []string) {
	p, err := e2e.Production(w.http, w.emu, appName)
	if err != nil {
		return "", []string{err.Error()}
	}
	return p.Release, e2e.CheckStatic(w.http, p, w.emu.CDNURL(w.env["DJDEPLOY_CDN_PROFILE"], w.env["DJDEPLOY_CDN_ENDPOINT"])+"/")
}

// liveReleases are the release ids production and the slot run, from the
// emulator's state (the app setting the release writes).
func (w *world) liveReleases() (prod, slot string) {
	for _, a := range w.emu.State().Apps {
		if a.Name != appName {
			continue
		}
		for _, s := range a.Slots {
			switch s.Name {
			case "production":
				prod = s.AppSettings["DJDEPLOY_RELEASE_ID"]
			case slotName:
				slot = s.AppSettings["DJDEPLOY_RELEASE_ID"]
			}
		}
	}
	return prod, slot
}

// blobNames lists the container.
func (w *world) blobNames(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	pager := w.blob.NewListBlobsFlatPager(w.cont, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing blobs: %w", err)
		}
		for _, b := range page.Segment.BlobItems {
			out[*b.Name] = true
		}
	}
	return out, nil
}

// retainedFilesPresent checks that every file named in the manifests of
// the releases production and the slot run exists in the container.
func (w *world) retainedFilesPresent(ctx context.Context) []string {
	names, err := w.blobNames(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	prod, slot := w.liveReleases()
	var problems []string
	for _, id := range []string{prod, slot} {
		if id == "" {
			continue
		}
		// Manifests live in the private state container, under the static
		// container's name and prefix.
		mname := w.cont + "/" + w.prefix + staticsync.MetaDir + "releases/" + id + ".json"
		resp, err := w.blob.DownloadStream(ctx, staticsync.StateContainer, mname, nil)
		if err != nil {
			// A release whose sync never finished has no manifest; the
			// slot may run one only if the deploy went ahead anyway.
			problems = append(problems, fmt.Sprintf("release %s runs but its manifest %s is missing: %v", id, mname, err))
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var m staticsync.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			problems = append(problems, fmt.Sprintf("manifest %s: %v", mname, err))
			continue
		}
		var missing []string
		for f := range m.Files {
			if !names[f] {
				missing = append(missing, f)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("release %s: %d of its files are gone: %v", id, len(missing), missing))
		}
		if len(m.Files) == 0 {
			problems = append(problems, fmt.Sprintf("release %s: its manifest names no files", id))
		}
	}
	return problems
}
