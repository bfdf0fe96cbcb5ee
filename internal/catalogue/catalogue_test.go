// Package catalogue is djdeploy's bad-input catalogue: malformed and
// hostile inputs across djdeploy.yaml, flags, the environment, the GitHub
// Action's inputs and the Azure Pipelines template's parameters, each
// expected to give one clear error, the right exit code (2 for bad input,
// 1 for failures), no Go internals, and no change to anything remote.
package catalogue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
)

// world is one emulator shared by the cases that reach Azure.
type world struct {
	t    *testing.T
	emu  *emulator.Emulator
	env  map[string]string
	blob *azblob.Client
	py   string

	artOnce sync.Once
	artA    string // a built artifact of the example
	artB    string // one of the example with an edited template
	artErr  error

	binOnce sync.Once
	bin     string
	binErr  error
}

func newWorld(t *testing.T) *world {
	py := e2e.Require(t, "bad-input catalogue runs against the emulator")
	emu := e2e.Emulator(t, py)
	w := &world{t: t, emu: emu, env: e2e.Env(emu, py), py: py}
	var err error
	if w.blob, err = azblob.NewClientFromConnectionString(emu.StorageConnectionString(), nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// remote is everything a case must leave unchanged: the emulator's apps,
// swaps and purges, and the container's blobs (the lock blob aside: a
// release takes and gives back its lease).
func (w *world) remote(t *testing.T) string {
	st := w.emu.State()
	st.TokensIssued, st.Faults = 0, nil
	b, _ := json.Marshal(st)
	var names []string
	pager := w.blob.NewListBlobsFlatPager(w.env["DJDEPLOY_STATIC_CONTAINER"], nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing blobs: %v", err)
		}
		for _, it := range page.Segment.BlobItems {
			if strings.HasSuffix(*it.Name, ".djdeploy/lock") {
				continue
			}
			names = append(names, *it.Name+" "+string(*it.Properties.ETag))
		}
	}
	sort.Strings(names)
	return string(b) + "\n" + strings.Join(names, "\n")
}

// artifacts builds two artifacts of the example (the second with an
// edited template) once, for the cases that tamper with them.
func (w *world) artifacts(t *testing.T) (string, string) {
	w.artOnce.Do(func() {
		build := func(edit bool) string {
			dir := e2e.Project(w.t, "django-app")
			if edit {
				p := filepath.Join(dir, "pages/templates/pages/home.html")
				b, _ := os.ReadFile(p)
				os.WriteFile(p, append(b, []byte("<!-- other project -->\n")...), 0o644)
			}
			out := filepath.Join(w.t.TempDir(), "build")
			r := w.run(t, nil, "build", "--project", dir, "--out", out)
			if r.code != 0 {
				w.artErr = fmt.Errorf("building an artifact: %s", r)
			}
			return out
		}
		w.artA, w.artB = build(false), build(true)
	})
	if w.artErr != nil {
		t.Fatal(w.artErr)
	}
	// Each case gets its own copy to tamper with.
	return copyDir(t, w.artA), copyDir(t, w.artB)
}

func copyDir(t *testing.T, src string) string {
	dst := filepath.Join(t.TempDir(), "art")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run is djdeploy in-process with the emulator's environment plus extra
// ("-" deletes a variable; e2e.With deletes on "", which djdeploy's getenv
// cannot tell from an empty value).
func (w *world) run(t *testing.T, extra map[string]string, args ...string) result {
	over := make(map[string]string, len(extra))
	for k, v := range extra {
		if v == "-" {
			v = ""
		}
		over[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := e2e.Main(ctx, e2e.With(w.env, over), args...)
	return result{r.Code, r.Stdout, r.Stderr}
}

// binary builds cmd/djdeploy once for the CI-adapter cases.
func (w *world) binary(t *testing.T) string {
	w.binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "djdeploy-catalogue-")
		if err != nil {
			w.binErr = err
			return
		}
		w.bin = filepath.Join(dir, "djdeploy")
		if out, err := exec.Command("go", "build", "-o", w.bin, "../../cmd/djdeploy").CombinedOutput(); err != nil {
			w.binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if w.binErr != nil {
		t.Fatal(w.binErr)
	}
	return w.bin
}

// runProcess runs the built binary with exactly env (plus PATH and HOME).
func (w *world) runProcess(t *testing.T, dir string, env map[string]string, args ...string) result {
	c := exec.Command(w.binary(t), args...)
	c.Dir = dir
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// fakeARM answers every request with body (status 200): malformed JSON
// from the service. It counts requests that would change something.
type fakeARM struct {
	srv     *httptest.Server
	mu      sync.Mutex
	writes  []string
	answers int
}

func newFakeARM(t *testing.T, contentType, body string) *fakeARM {
	f := &fakeARM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.answers++
		if r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/list") {
			f.writes = append(f.writes, r.Method+" "+r.URL.Path)
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", contentType)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func sha256File(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// editJSON rewrites a JSON file through fn.
func editJSON(t *testing.T, p string, fn func(m map[string]any)) {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, body string) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
