package staticsync

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// helperArgs configure a helper process: this test binary re-executed,
// syncing as a separate OS process would.
type helperArgs struct {
	Conn, Container, Source, Holder string
	Concurrency                     int
	HoldMillis                      int // keep the lock this long after syncing
}

// helperMain runs in the child: take the lock, print when it was taken,
// sync under it, hold it a while, print when it is let go.
func helperMain() int {
	var a helperArgs
	if err := json.Unmarshal([]byte(os.Getenv("DJDEPLOY_STATICSYNC_HELPER")), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	c, err := Open(Config{ConnectionString: a.Conn, Container: a.Container})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	src, err := ReadSource(ctx, a.Source, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	lock, err := AcquireLock(ctx, c, a.Holder, 2*time.Minute, progressToStderr{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("LOCKED %d\n", time.Now().UnixNano())
	if _, err := c.Sync(ctx, src, SyncOptions{Lock: lock, Concurrency: a.Concurrency}, progressToStderr{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(time.Duration(a.HoldMillis) * time.Millisecond)
	fmt.Printf("UNLOCKING %d\n", time.Now().UnixNano())
	if err := lock.Release(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type progressToStderr struct{}

func (progressToStderr) Infof(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (progressToStderr) Warnf(f string, a ...any) { fmt.Fprintf(os.Stderr, "warning: "+f+"\n", a...) }
func (progressToStderr) Count(w string, d, t int64) {
	fmt.Fprintf(os.Stderr, "%s %d/%d\n", w, d, t)
}

func helper(t *testing.T, a helperArgs) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(a)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "DJDEPLOY_STATICSYNC_HELPER="+string(js))
	return cmd
}

func lockTimes(t *testing.T, out string) (locked, unlocked int64) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "LOCKED":
			locked = n
		case "UNLOCKING":
			unlocked = n
		}
	}
	if locked == 0 || unlocked == 0 {
		t.Fatalf("helper output lacks lock times: %q", out)
	}
	return locked, unlocked
}

// TestLockSerialisesProcesses: two syncs in two OS processes against one
// container take turns; the second reports who holds the lock.
func TestLockSerialisesProcesses(t *testing.T) {
	srv := startAzurite(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	writeTree(t, dirA, map[string]string{"a.css": "a", "shared.js": "A"})
	writeTree(t, dirB, map[string]string{"b.css": "b", "shared.js": "B"})
	var errA, errB strings.Builder
	a := helper(t, helperArgs{Conn: srv.ConnectionString(), Container: "static", Source: dirA, Holder: "run-A", HoldMillis: 1500})
	b := helper(t, helperArgs{Conn: srv.ConnectionString(), Container: "static", Source: dirB, Holder: "run-B", HoldMillis: 1500})
	a.Stderr, b.Stderr = &errA, &errB
	var outA, outB strings.Builder
	a.Stdout, b.Stdout = &outA, &outB
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("helper A: %v\n%s", err, errA.String())
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("helper B: %v\n%s", err, errB.String())
	}
	la, ua := lockTimes(t, outA.String())
	lb, ub := lockTimes(t, outB.String())
	if la < ub && lb < ua {
		t.Fatalf("lock held by both at once: A %d..%d, B %d..%d", la, ua, lb, ub)
	}
	// Whoever came second waited and was told who held the lock.
	second, holder := errB.String(), "run-A"
	if lb < la {
		second, holder = errA.String(), "run-B"
	}
	if !strings.Contains(second, "waiting for the release lock") || !strings.Contains(second, holder) {
		t.Errorf("second process did not report the holder %s:\n%s", holder, second)
	}
	// Both syncs completed: the union of files, shared.js from the later one.
	c := open(t, srv, "static", "", nil)
	last := "B"
	if la > lb {
		last = "A"
	}
	for name, want := range map[string]string{"a.css": "a", "b.css": "b", "shared.js": last} {
		if st, ok := getBlob(t, c, name); !ok || string(st.data) != want {
			t.Errorf("%s = %q, want %q", name, st.data, want)
		}
	}
}

// TestLockTimeoutNamesHolder: with no wait, a held lock fails at once with
// a message naming the holder; after release it is free.
func TestLockTimeoutNamesHolder(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	c := open(t, srv, "static", "", nil)
	l1, err := AcquireLock(ctx, c, "https://github.com/o/r/actions/runs/42", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(ctx, c, "other", 0, nil)
	p, ok := problem.As(err)
	if !ok || p.Usage || !strings.Contains(p.What, "actions/runs/42") || !strings.Contains(p.What, "since") {
		t.Fatalf("second acquire: %v", err)
	}
	// A wait longer than the holder's work succeeds once it lets go.
	go func() { time.Sleep(1500 * time.Millisecond); _ = l1.Release(ctx) }()
	l2, err := AcquireLock(ctx, c, "other", 30*time.Second, nil)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	h, err := ReadLockHolder(ctx, c)
	if err != nil || h.Holder != "other" || !h.Leased {
		t.Fatalf("holder after re-acquire: %+v %v", h, err)
	}
	// The lease outlives its duration because it is renewed.
	time.Sleep(leaseDuration + 3*time.Second)
	if err := l2.Err(); err != nil {
		t.Fatalf("lock lost while renewed: %v", err)
	}
	if _, err := AcquireLock(ctx, c, "third", 0, nil); err == nil {
		t.Fatal("renewed lock was taken by another")
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSyncKilledMidwayResumes: SIGKILL a sync of many files in another
// process, then sync again: the dead holder's lease expires by itself and
// the second run ends complete and correct.
func TestSyncKilledMidwayResumes(t *testing.T) {
	srv := startAzurite(t)
	dir := t.TempDir()
	files := map[string]string{}
	for i := range 1500 {
		files[fmt.Sprintf("d%02d/f%04d.js", i%20, i)] = fmt.Sprintf("file %d %s", i, strings.Repeat("x", i%500))
	}
	writeTree(t, dir, files)
	cmd := helper(t, helperArgs{Conn: srv.ConnectionString(), Container: "static", Source: dir, Holder: "doomed", Concurrency: 2})
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has started uploading (the first progress line).
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "files ") {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	c := open(t, srv, "static", "", nil)
	partial := len(blobNames(t, c))
	if partial >= len(files) {
		t.Fatalf("the helper finished before it was killed (%d blobs)", partial)
	}
	h, _ := ReadLockHolder(context.Background(), c)
	if !h.Leased || h.Holder != "doomed" {
		t.Fatalf("killed holder's lock: %+v", h)
	}
	res, err := c.Sync(context.Background(), readSource(t, dir), SyncOptions{LockWait: 2 * leaseDuration, Holder: "rerun"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded+res.Skipped != len(files) || res.Skipped == 0 || !res.ManifestWritten {
		t.Fatalf("re-run: %+v (blobs before: %d)", res, partial)
	}
	all, _, err := c.list(context.Background(), "", true)
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range files {
		b := all[rel]
		if b == nil || b.size != int64(len(content)) || b64md5([]byte(content)) != b64(b.md5) {
			t.Fatalf("%s incomplete after re-run: %+v", rel, b)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestLockCheckAfterTakeover: a holder whose lease was taken by another
// run (broken here, as an expired lease is taken in life), or which was
// paused past its lease, learns it from Check before it writes again,
// while the new holder's Check passes.
func TestLockCheckAfterTakeover(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	c := open(t, srv, "static", "", nil)
	l1, err := AcquireLock(ctx, c, "first", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Release(ctx)
	if err := l1.Check(ctx); err != nil {
		t.Fatalf("check of a held lock: %v", err)
	}
	breaker, err := lease.NewBlobClient(c.state.NewBlockBlobClient(c.metaName(lockName)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := breaker.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr(int32(0))}); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(ctx, c, "second", 0, nil)
	if err != nil {
		t.Fatalf("acquire after the break: %v", err)
	}
	defer l2.Release(ctx)
	if err := l1.Check(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("check of the lock taken over: %v, want ErrLockLost", err)
	}
	if err := l1.Err(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Err after a failed check: %v", err)
	}
	if err := l2.Check(ctx); err != nil {
		t.Fatalf("the new holder's check: %v", err)
	}
	// Paused past the lease: the renewal would even succeed when nobody
	// took the lock, but what it protected may have changed meanwhile.
	l2.mu.Lock()
	l2.lastOK = time.Now().Add(-leaseDuration - time.Second)
	l2.mu.Unlock()
	if err := l2.Check(ctx); !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "not renewed") {
		t.Fatalf("check after a pause past the lease: %v", err)
	}
}

// TestStateIsPrivateAndMigrated: issue 12's reproduction 8. State lives
// in the private state container, never in the static one; state an
// older version left in the static container moves there at the first
// lock, and the public copies are gone.
func TestStateIsPrivateAndMigrated(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	c := open(t, srv, "static", "site", nil)
	syncRelease(t, c, "r1", "app.11111111.js")
	if err := c.MarkProduction(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range blobNames(t, c) {
		if strings.Contains(n, MetaDir) {
			t.Errorf("state in the static container: %s", n)
		}
	}
	if got := stateNames(t, c); !slices.Contains(got, "site/.djdeploy/production.json") || !slices.Contains(got, "site/.djdeploy/releases/r1.json") {
		t.Fatalf("state container holds %v", got)
	}
	p, err := c.state.GetProperties(ctx, nil)
	if err != nil || p.BlobPublicAccess != nil {
		t.Fatalf("state container: public access %v, %v; want private", p.BlobPublicAccess, err)
	}

	// An older version's layout: the state under site/.djdeploy/ in the
	// static container, nothing in the state container.
	old := open(t, srv, "legacy", "site", nil)
	if _, err := old.createContainer(ctx); err != nil {
		t.Fatal(err)
	}
	putOutOfBand(t, old, "site/app.22222222.js", "old app")
	putOutOfBand(t, old, "site/.djdeploy/releases/r0.json", `{"schema":1,"release_id":"r0","prefix":"site/","files":{"site/app.22222222.js":"x"}}`)
	putOutOfBand(t, old, "site/.djdeploy/production.json", `{"schema":1,"releases":[{"release_id":"r0","at":"2026-01-01T00:00:00Z"}]}`)
	putOutOfBand(t, old, "site/.djdeploy/lock", "")
	// Read before any lock: the old copy is still found.
	if h, err := old.History(ctx); err != nil || len(h) != 1 || h[0].ReleaseID != "r0" {
		t.Fatalf("history before the move: %+v %v", h, err)
	}
	l, err := AcquireLock(ctx, old, "upgrade", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if got := blobNames(t, old); !slices.Equal(got, []string{"site/app.22222222.js"}) {
		t.Errorf("the static container after the move holds %v; want only the static file", got)
	}
	if got := stateNames(t, old); !slices.Contains(got, "site/.djdeploy/production.json") || !slices.Contains(got, "site/.djdeploy/releases/r0.json") || !slices.Contains(got, "site/.djdeploy/lock") {
		t.Errorf("the state container after the move holds %v", got)
	}
	if h, err := old.History(ctx); err != nil || len(h) != 1 || h[0].ReleaseID != "r0" {
		t.Errorf("history after the move: %+v %v", h, err)
	}
}
