package emulator

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

// TestOryxBuild deploys with SCM_DO_BUILD_DURING_DEPLOYMENT=true as App
// Service's build does it: requirements.txt is installed from PyPI into a
// virtualenv (antenv) and the app starts from it. The app imports a package
// the emulator's own Python lacks, so it can only answer if pip installed
// it; a requirement that does not exist fails the deployment as BuildFailed
// with pip's error in the deployment log.
func TestOryxBuild(t *testing.T) {
	py := testenv.Python(t)
	if exec.Command(py, "-c", "import humanize").Run() == nil {
		t.Fatalf("%s imports humanize: the test needs a package only the build can install", py)
	}
	ctx := context.Background()
	e, err := Start(ctx, Config{Python: py, Workers: 1, BuildCache: t.TempDir(), Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c, err := armappservice.NewWebAppsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{Properties: map[string]*string{
		"SCM_DO_BUILD_DURING_DEPLOYMENT": to.Ptr("true"),
		"POST_BUILD_COMMAND":             to.Ptr(`python -c "import humanize; print('post-build sees humanize', humanize.__version__)"`)}}, nil); err != nil {
		t.Fatal(err)
	}
	app := map[string]string{
		"requirements.txt": "gunicorn==27.0.1\nuvicorn==0.55.0\nhumanize==4.17.0\n",
		"proj/__init__.py": "",
		"proj/settings.py": "",
		"proj/asgi.py": `import humanize, sys

async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("humanize " + humanize.__version__ + " from " + humanize.__file__ + " on " + sys.prefix).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
`,
	}
	log := func(id string) string {
		return readAll(t, do(t, "GET", e.SCMURL("demo-app", "staging")+"/api/deployments/"+id+"/log", e.Token(), nil))
	}
	for i, want := range []string{"Running pip install -r requirements.txt", "reusing the one built from the same requirements.txt"} {
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, app))
		if st, body := waitDeployment(t, e, "demo-app", "staging", id); st != kuduSuccess {
			t.Fatalf("deployment %d: status %d %s\nlog: %s", i+1, st, body, log(id))
		}
		if l := log(id); !strings.Contains(l, want) || !strings.Contains(l, "post-build sees humanize 4.17.0") {
			t.Errorf("deployment %d's log does not say %q and the POST_BUILD_COMMAND's output (run with antenv active):\n%s", i+1, want, l)
		}
		code, page := getText(t, e.SlotURL("demo-app", "staging")+"/")
		if code != 200 || !strings.Contains(page, "humanize 4.17.0 from ") || !strings.Contains(page, antenv) {
			t.Fatalf("deployment %d: the slot answers %d %q; want the app importing humanize from %s", i+1, code, page, antenv)
		}
	}

	app["requirements.txt"] = "gunicorn==27.0.1\ndjdeploy-surely-no-such-package==1.0\n"
	id := deployZip(t, e, "demo-app", "staging", zipFiles(t, app))
	if st, _ := waitDeployment(t, e, "demo-app", "staging", id); st != kuduFailed {
		t.Fatalf("a requirement that does not exist: status %d, want failed", st)
	}
	if r := deploymentStatus(t, c, "staging", id); *r.Properties.Status != armappservice.DeploymentBuildStatusBuildFailed {
		t.Errorf("status %s, want BuildFailed", *r.Properties.Status)
	}
	if l := log(id); !strings.Contains(l, "No matching distribution found for djdeploy-surely-no-such-package") {
		t.Errorf("the deployment log lacks pip's error:\n%s", l)
	}
	// The slot still serves the release that built.
	if code, page := getText(t, e.SlotURL("demo-app", "staging")+"/"); code != 200 || !strings.Contains(page, "humanize 4.17.0") {
		t.Errorf("after a failed build the slot answers %d %q", code, page)
	}
}

// TestRuntimePythonFollowsLinuxFxVersion: a slot whose linuxFxVersion is
// PYTHON|3.13 builds its antenv with Python 3.13 and the app runs on it, as
// App Service picks the runtime from that setting; a version this machine
// lacks fails the deployment naming it.
func TestRuntimePythonFollowsLinuxFxVersion(t *testing.T) {
	py := testenv.Python(t)
	ctx := context.Background()
	e, err := Start(ctx, Config{Python: py, Workers: 1, BuildCache: t.TempDir(), Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.runtimePython("3.13"); err != nil {
		testenv.Missing(t, "Python 3.13", "install it (pyenv install 3.13): "+err.Error())
	}
	c, err := armappservice.NewWebAppsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{Properties: map[string]*string{
		"SCM_DO_BUILD_DURING_DEPLOYMENT": to.Ptr("true")}}, nil); err != nil {
		t.Fatal(err)
	}
	app := map[string]string{
		"requirements.txt": "gunicorn==27.0.1\nuvicorn==0.55.0\n",
		"proj/__init__.py": "",
		"proj/settings.py": "",
		"proj/asgi.py": `import sys

async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": ("python %d.%d" % sys.version_info[:2]).encode()})
`,
	}
	for _, c2 := range []struct{ version, want string }{{"3.13", "python 3.13"}, {"3.12", "python 3.12"}} {
		if _, err := c.UpdateConfigurationSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.SiteConfigResource{
			Properties: &armappservice.SiteConfig{LinuxFxVersion: to.Ptr("PYTHON|" + c2.version)}}, nil); err != nil {
			t.Fatal(err)
		}
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, app))
		if st, body := waitDeployment(t, e, "demo-app", "staging", id); st != kuduSuccess {
			t.Fatalf("PYTHON|%s: status %d %s", c2.version, st, body)
		}
		if code, page := getText(t, e.SlotURL("demo-app", "staging")+"/"); code != 200 || page != c2.want {
			t.Errorf("PYTHON|%s: the slot answers %d %q, want %q", c2.version, code, page, c2.want)
		}
	}
	if _, err := c.UpdateConfigurationSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.SiteConfigResource{
		Properties: &armappservice.SiteConfig{LinuxFxVersion: to.Ptr("PYTHON|3.99")}}, nil); err != nil {
		t.Fatal(err)
	}
	id := deployZip(t, e, "demo-app", "staging", zipFiles(t, app))
	if st, _ := waitDeployment(t, e, "demo-app", "staging", id); st != kuduFailed {
		t.Fatalf("PYTHON|3.99: status %d, want failed", st)
	}
	if l := readAll(t, do(t, "GET", e.SCMURL("demo-app", "staging")+"/api/deployments/"+id+"/log", e.Token(), nil)); !strings.Contains(l, "no Python 3.99") {
		t.Errorf("the deployment log does not name the missing runtime:\n%s", l)
	}
}
