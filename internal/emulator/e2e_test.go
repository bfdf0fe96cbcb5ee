package emulator

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// exampleApp copies examples/django-app (or, while it does not exist, a tiny
// project), marks its home page with release, and collects its static files
// so the manifest storage can render {% static %}.
func exampleApp(t *testing.T, py, release string) []byte {
	t.Helper()
	src := "../../examples/django-app"
	if _, err := os.Stat(filepath.Join(src, "manage.py")); err != nil {
		t.Logf("examples/django-app not found; using a tiny Django project")
		return zipDir(t, djangoApp(t, "content "+release))
	}
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-R", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the example: %v %s", err, out)
	}
	for _, junk := range []string{".venv", "staticfiles", "db.sqlite3"} {
		os.RemoveAll(filepath.Join(dst, junk))
	}
	tpl := filepath.Join(dst, "pages", "templates", "pages", "home.html")
	b, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tpl, append(b, []byte("\n<!-- content "+release+" -->\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "manage.py", "collectstatic", "--noinput")
	cmd.Dir = dst
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic: %v %s", err, out)
	}
	return zipDir(t, dst)
}

// TestEndToEndDjango deploys the example Django app to staging, swaps it
// into production, and swaps a second release in under load.
func TestEndToEndDjango(t *testing.T) {
	py := testenv.Python(t)
	e, err := Start(context.Background(), Config{Python: py, Workers: 1, Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	c := webApps(t, e, staticCred(e.Token()))
	swap := func() {
		t.Helper()
		p, err := c.BeginSwapSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.CsmSlotEntity{TargetSlot: to.Ptr("production"), PreserveVnet: to.Ptr(true)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(release string) {
		t.Helper()
		id := deployZip(t, e, "demo-app", "staging", exampleApp(t, py, release))
		r := deploymentStatus(t, c, "staging", id)
		if *r.Properties.Status != armappservice.DeploymentBuildStatusRuntimeSuccessful {
			var logs []string
			for _, l := range r.Properties.FailedInstancesLogs {
				logs = append(logs, *l)
			}
			t.Fatalf("deployment %s: %s\n%s", release, *r.Properties.Status, strings.Join(logs, "\n"))
		}
	}
	page := func(url string) string {
		t.Helper()
		code, body := getText(t, url+"/")
		if code != 200 {
			t.Fatalf("GET %s/: %d %s", url, code, body)
		}
		return body
	}

	deploy("r1")
	if p := page(e.SlotURL("demo-app", "staging")); !strings.Contains(p, "content r1") {
		t.Fatalf("staging page lacks the release marker: %s", p)
	}
	if p := page(e.ProductionURL("demo-app")); strings.Contains(p, "content r1") {
		t.Fatalf("production serves r1 before any swap")
	}
	swap()
	if p := page(e.ProductionURL("demo-app")); !strings.Contains(p, "content r1") {
		t.Fatalf("production does not serve r1 after the swap: %s", p)
	}

	deploy("r2")
	// Swap under load: every request to production must succeed.
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(e.ProductionURL("demo-app") + "/")
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	swap()
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d requests to production failed during the swap", failures.Load())
	}
	if p := page(e.ProductionURL("demo-app")); !strings.Contains(p, "content r2") {
		t.Errorf("production does not serve r2 after the second swap")
	}
	if p := page(e.SlotURL("demo-app", "staging")); !strings.Contains(p, "content r1") {
		t.Errorf("staging does not hold r1 after the second swap")
	}

	// Close stops every app process it started.
	var pids []int
	for _, s := range []string{"production", "staging"} {
		if in := e.findSlot("demo-app", s).inst.Load(); in.cmd != nil {
			pids = append(pids, in.cmd.Process.Pid)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("expected two app processes, got %v", pids)
	}
	e.Close()
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("app process group %d still runs after Close", pid)
		}
	}
}
