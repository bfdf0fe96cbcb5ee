package emulator

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestBindLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"gunicorn --bind=0.0.0.0:$PORT app:app":               "gunicorn --bind=127.0.0.1:$PORT app:app",
		"gunicorn --bind 0.0.0.0:8000 -k uvicorn app":         "gunicorn --bind 127.0.0.1:8000 -k uvicorn app",
		"gunicorn -b :$PORT app":                              "gunicorn -b 127.0.0.1:$PORT app",
		"gunicorn --bind=:$PORT app":                          "gunicorn --bind=127.0.0.1:$PORT app",
		"uvicorn --host 0.0.0.0 --port $PORT app:app":         "uvicorn --host 127.0.0.1 --port $PORT app:app",
		"hypercorn --bind '[::]:8000' app":                    "hypercorn --bind '127.0.0.1:8000' app",
		"python manage.py migrate && gunicorn -b 127.0.0.1:1": "python manage.py migrate && gunicorn -b 127.0.0.1:1",
	} {
		if got := bindLoopback(in); got != want {
			t.Errorf("bindLoopback(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

// TestExposedListeners: what the emulator checks after an app starts, on
// real sockets.
func TestExposedListeners(t *testing.T) {
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	if got := exposedListeners(portOf(lo.Addr().String())); len(got) != 0 {
		t.Errorf("a loopback listener is reported exposed: %v", got)
	}
	all, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	port := portOf(all.Addr().String())
	if got := exposedListeners(port); len(got) != 1 || got[0] != "0.0.0.0:"+strconv.Itoa(port) {
		t.Errorf("a 0.0.0.0 listener: %v", got)
	}
}

// TestStartStopsOrphans: apps of an emulator that was killed (SIGKILL
// leaves no chance to stop them) kept listening; the next start finds them
// by their owner mark, stops them and says so.
func TestStartStopsOrphans(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan := exec.Command("sleep", "600")
	orphan.Env = append(os.Environ(), ownerEnv+"="+strconv.Itoa(dead.Process.Pid))
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { orphan.Wait(); close(exited) }()
	t.Cleanup(func() { _ = orphan.Process.Kill() })

	var log lockedLog
	e, err := Start(context.Background(), Config{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-exited // it would sleep ten minutes unless stopped
	if !strings.Contains(log.String(), "earlier emulator left running") || !strings.Contains(log.String(), strconv.Itoa(orphan.Process.Pid)) {
		t.Errorf("the start did not say it stopped the orphan:\n%s", log.String())
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestKuduLimits: a 1 MB zip that unpacks to 1 GiB was extracted whole
// before the deployment failed, failed releases' folders stayed, and a
// trickling upload held the slot (409 for everyone else) while it lasted.
func TestKuduLimits(t *testing.T) {
	e, err := Start(context.Background(), Config{Log: testLog{}, MaxUnpackedBytes: 1 << 20, MaxEntries: 50, UploadTimeout: 2 * 1e9})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	releases := filepath.Join(e.StateDir(), "apps")

	bomb := func(files int, size int) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i := 0; i < files; i++ {
			w, _ := zw.Create("f" + strconv.Itoa(i) + ".txt")
			w.Write(bytes.Repeat([]byte{0}, size))
		}
		zw.Close()
		return buf.Bytes()
	}
	for name, z := range map[string][]byte{
		"unpacked size": bomb(1, 4<<20), // 4 MiB of zeros, a few KiB zipped
		"entry count":   bomb(200, 1),
	} {
		id := deployZip(t, e, "demo-app", "staging", z)
		if status, body := waitDeployment(t, e, "demo-app", "staging", id); status != kuduFailed || !strings.Contains(body, "too large") {
			t.Errorf("%s over the limit: status %d %s", name, status, body)
		}
		if n := countFiles(t, releases, id); n != 0 {
			t.Errorf("%s: the failed release left %d files", name, n)
		}
	}

	// A stalled upload ends at the deadline and holds nothing meanwhile.
	pr, pw := io.Pipe()
	go pw.Write([]byte("PK"))
	req, _ := http.NewRequest("POST", e.SCMURL("demo-app", "staging")+"/api/publish?type=zip&async=true", pr)
	req.Header.Set("Authorization", "Bearer "+e.Token())
	req.Header.Set("Content-Type", "application/octet-stream")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "hi"}))
	waitDeployment(t, e, "demo-app", "staging", id)
	<-done // ends because of the upload deadline: nothing closes the pipe
	pw.Close()
}

func countFiles(t *testing.T, root, id string) int {
	n := 0
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, id) && !info.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// childEnv makes the test binary an emulator that deploys one app and
// waits to be killed (TestKilledEmulatorTakesItsAppsAlong).
const childEnv = "DJDEPLOY_EMULATOR_TEST_CHILD"

func runChildEmulator() {
	res := DefaultResources()
	res.Apps[0].AppCommandLine = "python3 -m http.server $PORT --bind 0.0.0.0"
	e, err := Start(context.Background(), Config{Resources: res})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("index.html")
	w.Write([]byte("hello"))
	zw.Close()
	req, _ := http.NewRequest("POST", e.SCMURL("demo-app", "staging")+"/api/publish?type=zip", &buf)
	req.Header.Set("Authorization", "Bearer "+e.Token())
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Println("ERROR deploying", err, resp)
		os.Exit(1)
	}
	in := e.findSlot("demo-app", "staging").inst.Load()
	fmt.Printf("APP %d %d\n", in.cmd.Process.Pid, in.port)
	select {}
}

// TestKilledEmulatorTakesItsAppsAlong: a SIGKILLed emulator left its apps
// running as orphans, still listening. Its app (bound 0.0.0.0 by its
// startup command, rewritten to 127.0.0.1) now dies with it.
func TestKilledEmulatorTakesItsAppsAlong(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		testenv.Missing(t, "python3", "install python3: the app this test runs is python3 -m http.server")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid, port int
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "APP %d %d", &pid, &port); err != nil || serr != nil {
		t.Fatalf("the child emulator said %q (%v)", line, err)
	}
	if ex := exposedListeners(port); len(ex) != 0 {
		t.Errorf("the app listens on %v", ex)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatalf("the app does not answer on 127.0.0.1:%d: %v", port, err)
	} else {
		c.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The kernel delivers the parent-death signal at once; a process still
	// there after this long is an orphan.
	for i := 0; i < 300 && syscall.Kill(pid, 0) == nil; i++ {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(st), ") Z ") {
			break // a zombie waiting for its reaper is dead
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Errorf("app process %d outlived its killed emulator: %s", pid, st)
	}
	// The app's own server (a child of "sh -c", out of a parent-death
	// signal's reach) must be gone too: nothing answers on its port.
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the app still answers on 127.0.0.1:%d after its emulator was killed", port)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
