package staticsync

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestMain(m *testing.M) {
	// Short leases keep the tests about dead holders quick; Azure's
	// minimum is 15 s, the production value 60 s.
	leaseDuration = 15 * time.Second
	if os.Getenv("DJDEPLOY_STATICSYNC_HELPER") != "" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// counter counts requests by kind ("PUT blob", "GET list", "PUT lease"...).
type counter struct {
	mu sync.Mutex
	n  map[string]int
	rt http.RoundTripper
}

func newCounter() *counter {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	// Show the stored bytes: Go's transport would otherwise ask for gzip
	// and decompress gzip-encoded blobs behind the test's back.
	t.DisableCompression = true
	return &counter{n: map[string]int{}, rt: t}
}

func (c *counter) Do(req *http.Request) (*http.Response, error) {
	kind := req.Method + " " + requestKind(req)
	c.mu.Lock()
	c.n[kind]++
	c.mu.Unlock()
	return c.rt.RoundTrip(req)
}

func requestKind(req *http.Request) string {
	q := req.URL.Query()
	if comp := q.Get("comp"); comp != "" {
		return comp
	}
	if q.Get("restype") == "container" {
		return "container"
	}
	return "blob"
}

// take returns the counts so far and resets them.
func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	c.n = map[string]int{}
	return out
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

func startAzurite(t *testing.T) *azurite.Server {
	t.Helper()
	return testenv.Azurite(t)
}

func open(t *testing.T, srv *azurite.Server, containerName, prefix string, cnt *counter) *Client {
	t.Helper()
	cfg := Config{ConnectionString: srv.ConnectionString(), Container: containerName, Prefix: prefix}
	if cnt != nil {
		cfg.Transport = cnt
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

// writeTree writes files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readSource(t *testing.T, dir string) *Source {
	t.Helper()
	src, err := ReadSource(context.Background(), dir, "")
	if err != nil {
		t.Fatalf("ReadSource: %v", err)
	}
	return src
}

func b64md5(data []byte) string {
	s := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(s[:])
}

type blobState struct {
	data               []byte
	md5                string
	ct, cc, enc        string
	metaMD5, metaStore string
}

func getBlob(t *testing.T, c *Client, name string) (blobState, bool) {
	t.Helper()
	ctx := context.Background()
	resp, err := c.container.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if strings.Contains(err.Error(), "BlobNotFound") {
			return blobState{}, false
		}
		t.Fatalf("downloading %s: %v", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.container.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := blobState{data: data, ct: deref(p.ContentType), cc: deref(p.CacheControl), enc: deref(p.ContentEncoding)}
	if p.ContentMD5 != nil {
		st.md5 = base64.StdEncoding.EncodeToString(p.ContentMD5)
	}
	for k, v := range p.Metadata {
		switch strings.ToLower(k) {
		case metaMD5:
			st.metaMD5 = deref(v)
		case metaStored:
			st.metaStore = deref(v)
		}
	}
	return st, true
}

// blobNames lists every blob in the container.
func blobNames(t *testing.T, c *Client) []string {
	t.Helper()
	m, _, err := c.list(context.Background(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// putOutOfBand overwrites a blob as another tool would (no djdeploy metadata).
func putOutOfBand(t *testing.T, c *Client, name, content string) {
	t.Helper()
	_, err := c.container.NewBlockBlobClient(name).UploadBuffer(context.Background(), []byte(content), &blockblob.UploadBufferOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// stateNames lists the client's container's state in the private state
// container, named as the files were in the static container before
// ("<prefix>.djdeploy/...").
func stateNames(t *testing.T, c *Client) []string {
	t.Helper()
	m, err := c.listState(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
