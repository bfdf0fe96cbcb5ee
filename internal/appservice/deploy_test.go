package appservice

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func writePackage(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.zip")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func accepted(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id != "" {
			w.Header().Set("SCM-DEPLOYMENT-ID", id)
		}
		w.Header().Set("Location", "/api/deployments/latest?deployer=djdeploy")
		w.WriteHeader(http.StatusAccepted)
	}
}

func deployStatus(code int, st string, extra map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		props := map[string]any{"status": st, "numberOfInstancesInProgress": 1, "numberOfInstancesSuccessful": 0, "numberOfInstancesFailed": 0}
		for k, v := range extra {
			props[k] = v
		}
		if code == http.StatusAccepted {
			w.Header().Set("Location", r.URL.String())
		}
		writeJSON(w, code, map[string]any{"properties": props})
	}
}

func slotTarget() Target { return Target{ResourceGroup: testRG, App: testApp, Slot: testSlot} }

func TestDeploySucceedsThroughDeploymentStatus(t *testing.T) {
	f, c, _, out := setup(t)
	pkg := writePackage(t, "PK-zip-content")
	f.handleHost("POST /api/publish", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for k, want := range map[string]string{"type": "zip", "async": "true", "clean": "true", "restart": "true"} {
			if q.Get(k) != want {
				t.Errorf("query %s = %q, want %q", k, q.Get(k), want)
			}
		}
		if r.Host != f.slotHost() {
			t.Errorf("uploaded to %s, want the slot's SCM host %s", r.Host, f.slotHost())
		}
		accepted("dep-1")(w, r)
	})
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-1", sequence(
		deployStatus(202, "BuildInProgress", nil),
		deployStatus(202, "RuntimeStarting", nil),
		deployStatus(200, "RuntimeSuccessful", map[string]any{"numberOfInstancesInProgress": 0, "numberOfInstancesSuccessful": 1}),
	))
	res, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: pkg})
	if err != nil {
		t.Fatalf("Deploy: %v\n%s", err, out)
	}
	if res.DeploymentID != "dep-1" || res.Status != "RuntimeSuccessful" || res.Bytes != int64(len("PK-zip-content")) {
		t.Errorf("result = %+v", res)
	}
	if got := string(f.body("POST /api/publish")); got != "PK-zip-content" {
		t.Errorf("uploaded body = %q", got)
	}
	if n := f.count("GET " + sitePath(testSlot) + "/deploymentStatus/dep-1"); n != 3 {
		t.Errorf("status polls = %d, want 3", n)
	}
	for _, want := range []string{"BuildInProgress", "RuntimeSuccessful"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress does not report %s:\n%s", want, out)
		}
	}
}

func TestDeployProductionUsesSiteStatus(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", accepted("dep-p"))
	f.handle("GET "+sitePath("")+"/deploymentStatus/dep-p", deployStatus(200, "RuntimeSuccessful", nil))
	_, err := c.Deploy(context.Background(), DeployOptions{Target: Target{ResourceGroup: testRG, App: testApp, Slot: "production"}, Package: writePackage(t, "x")})
	if err != nil {
		t.Fatal(err)
	}
	if f.count("GET "+sitePath("")) != 1 {
		t.Errorf("production site was not read: %v", f.requests)
	}
}

func TestDeployWaitsOutConflict(t *testing.T) {
	f, c, _, out := setup(t)
	f.handleHost("POST /api/publish", sequence(
		status(http.StatusConflict, "There is a deployment currently in progress. Please try again when it completes."),
		status(http.StatusConflict, "There is a deployment currently in progress. Please try again when it completes."),
		accepted("dep-2"),
	))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-2", deployStatus(200, "RuntimeSuccessful", nil))
	res, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "zip-bytes")})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if res.Conflicts != 2 || f.count("POST /api/publish") != 3 {
		t.Errorf("conflicts = %d, uploads = %d", res.Conflicts, f.count("POST /api/publish"))
	}
	if !strings.Contains(out.String(), "another deployment is in progress") {
		t.Errorf("the wait is not reported:\n%s", out)
	}
	if got := string(f.body("POST /api/publish")); got != "zip-bytes" {
		t.Errorf("retried upload body = %q", got)
	}
}

func TestDeployRetriesUploadWithWholeBody(t *testing.T) {
	f, c, _, _ := setup(t)
	var bodies []string
	f.handleHost("POST /api/publish", sequence(
		func(w http.ResponseWriter, r *http.Request) {
			bodies = append(bodies, string(f.body("POST /api/publish")))
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter, r *http.Request) {
			bodies = append(bodies, string(f.body("POST /api/publish")))
			accepted("dep-3")(w, r)
		},
	))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-3", deployStatus(200, "RuntimeSuccessful", nil))
	if _, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "0123456789")}); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || bodies[0] != "0123456789" || bodies[1] != "0123456789" {
		t.Errorf("bodies = %q", bodies)
	}
}

func TestDeployBuildFailureShowsLog(t *testing.T) {
	f, c, _, out := setup(t)
	f.handleHost("POST /api/publish", accepted("dep-f"))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-f", sequence(
		deployStatus(202, "BuildInProgress", nil),
		deployStatus(200, "BuildFailed", map[string]any{
			"errors":              []map[string]any{{"code": "BuildFailed", "message": "Oryx build failed"}},
			"failedInstancesLogs": []string{"https://app.scm/api/vfs/LogFiles/x.log"},
		}),
	))
	f.handleHost("GET /api/deployments/dep-f/log", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{
			{"message": "Building the app", "details_url": nil},
			{"message": "Running pip install", "details_url": "/api/deployments/dep-f/log/step2"},
		})
	})
	f.handleHost("GET /api/deployments/dep-f/log/step2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{{"message": "ERROR: No matching distribution found for djangoo==9.9"}})
	})
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")})
	var de *DeployError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a DeployError", err)
	}
	if de.Status != "BuildFailed" || problem.ExitCode(err) != problem.ExitFailure {
		t.Errorf("status = %q, exit = %d", de.Status, problem.ExitCode(err))
	}
	p, _ := problem.As(err)
	if !strings.Contains(p.Fix, "build") {
		t.Errorf("fix = %q", p.Fix)
	}
	for _, want := range []string{"Oryx build failed", "x.log", "Running pip install", "No matching distribution found for djangoo==9.9"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDeployRuntimeFailure(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", accepted("dep-r"))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-r", deployStatus(200, "RuntimeFailed", map[string]any{"numberOfInstancesFailed": 1}))
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")})
	p, ok := problem.As(err)
	if !ok || !strings.Contains(p.What, "RuntimeFailed") || !strings.Contains(p.Fix, "startup command") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployFallsBackToKuduStatus(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", accepted("")) // no deployment id
	f.handleHost("GET /api/deployments/latest", sequence(
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", r.URL.String())
			writeJSON(w, 202, map[string]any{"id": "k1", "status": 1, "complete": false})
		},
		func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"id": "k1", "status": 4, "complete": true})
		},
	))
	res, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeploymentID != "k1" || res.Status != "Success" {
		t.Errorf("result = %+v", res)
	}
}

func TestDeployKuduFailure(t *testing.T) {
	f, c, _, out := setup(t)
	f.handleHost("POST /api/publish", accepted(""))
	f.handleHost("GET /api/deployments/latest", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "k2", "status": 3, "complete": true, "status_text": "startup.sh: not found"})
	})
	f.handleHost("GET /api/deployments/k2/log", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{{"message": "Deployment failed: output.tar.zst missing"}})
	})
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")})
	if err == nil || !strings.Contains(err.Error(), "startup.sh: not found") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "output.tar.zst missing") {
		t.Errorf("log tail missing:\n%s", out)
	}
}

func TestDeployFallsBackWhenARMHasNoStatus(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", accepted("dep-x"))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-x", status(404, `{"error":{"code":"NotFound","message":"nope"}}`))
	f.handleHost("GET /api/deployments/latest", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "dep-x", "status": 4, "complete": true})
	})
	if _, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")}); err != nil {
		t.Fatal(err)
	}
}

func TestDeployTimeout(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", accepted("dep-t"))
	f.handle("GET "+sitePath(testSlot)+"/deploymentStatus/dep-t", deployStatus(202, "BuildInProgress", nil))
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x"), Timeout: 50 * time.Millisecond})
	p, ok := problem.As(err)
	if !ok || !strings.Contains(p.What, "did not finish within") || !strings.Contains(p.What, "BuildInProgress") || !strings.Contains(p.Fix, "deploy-timeout") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployTimeoutWhileConflicting(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", status(http.StatusConflict, "busy"))
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x"), Timeout: 30 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployUploadForbidden(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handleHost("POST /api/publish", status(http.StatusForbidden, "Forbidden"))
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: writePackage(t, "x")})
	p, ok := problem.As(err)
	if !ok || !strings.Contains(p.Fix, "publish/Action") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployMissingPackageIsUsage(t *testing.T) {
	_, c, _, _ := setup(t)
	_, err := c.Deploy(context.Background(), DeployOptions{Target: slotTarget(), Package: filepath.Join(t.TempDir(), "nope.zip")})
	if problem.ExitCode(err) != problem.ExitUsage {
		t.Fatalf("err = %v", err)
	}
}

func TestHostURL(t *testing.T) {
	tests := []struct {
		host, want string
		usage      bool
	}{
		{"app.scm.azurewebsites.net", "https://app.scm.azurewebsites.net", false},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"localhost:9", "http://localhost:9", false},
		{"http://scm.example.com", "", true},
		{"https://scm.example.com/", "https://scm.example.com", false},
	}
	for _, tt := range tests {
		got, err := hostURL("SCM", tt.host)
		if tt.usage {
			if problem.ExitCode(err) != problem.ExitUsage {
				t.Errorf("hostURL(%q) err = %v, want a usage error", tt.host, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("hostURL(%q) = %q, %v; want %q", tt.host, got, err, tt.want)
		}
	}
	if _, err := hostURL("SCM", ""); err == nil {
		t.Error("hostURL(\"\") did not fail")
	}
}
