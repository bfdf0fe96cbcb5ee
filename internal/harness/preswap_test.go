package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// setSlotConnectionString replaces the release slot's connection strings
// through ARM, as a user does in the portal.
func setSlotConnectionString(t *testing.T, s *shared, name, typ, value string) {
	t.Helper()
	e := s.emu.Env()
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{name: map[string]string{"value": value, "type": typ}}})
	u := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Web/sites/%s/slots/%s/config/connectionstrings?api-version=2023-12-01",
		s.emu.ARMEndpoint(), s.emu.Subscription(), e["DJDEPLOY_RESOURCE_GROUP"], e["DJDEPLOY_APP"], e["DJDEPLOY_SLOT"])
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.emu.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT connection strings: %s", resp.Status)
	}
}

// TestPreSwapRunsWithTheBuildsInterpreter: in the action's situation (the
// python3 on PATH has no Django), `pre-swap-where: ci` runs `python
// manage.py migrate` with the build's virtualenv first on PATH, kept until
// the release ends, and with the slot's app settings and connection strings
// (POSTGRESQLCONNSTR_*, as App Service names them) in its environment. The
// virtualenv is gone after the release.
func TestPreSwapRunsWithTheBuildsInterpreter(t *testing.T) {
	s := fixture(t)
	base := testenv.BasePython(t)
	gh := newFakeGitHub(t, "octo/shop")
	connSecret := randomSecret("postgres://app:pw-")
	setSlotConnectionString(t, s, "DEFAULT", "PostgreSQL", connSecret)
	defer setSlotConnectionString(t, s, "UNUSED", "Custom", "x")

	ws := e2e.Project(t, "workspace")
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, migrated by the build's interpreter")
	in := releaseSettings(s)
	in["credential"] = "access-token"
	in["access-token"] = s.emu.Token()
	in["python"] = base
	in["build-venv"] = "auto"
	in["pre-swap-command"] = `python manage.py migrate --noinput && python -c "import os, sys, django; print('pre-swap:', 'django', django.get_version(), 'venv', sys.prefix != sys.base_prefix, 'conn', os.environ.get('POSTGRESQLCONNSTR_DEFAULT', '').startswith('postgres://app:pw-'))"`
	tmp := t.TempDir()
	extra := map[string]string{
		// The runner's python and python3 lack Django, as in the image.
		"PATH":   filepath.Dir(base) + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin",
		"TMPDIR": tmp,
	}
	r := githubStep(t, s, gh, ws, in, extra)
	if r.Code != 0 {
		t.Fatalf("release with pre-swap migrate and a Python without Django: %s", r)
	}
	if !strings.Contains(r.Stdout, "pre-swap: django") || !strings.Contains(r.Stdout, "venv True conn True") {
		t.Errorf("the pre-swap command did not run with the build's virtualenv and the slot's connection strings:\n%s", r.Stdout)
	}
	// Registered as a mask (::add-mask::), and shown nowhere else.
	for _, l := range strings.Split(r.Stdout+"\n"+r.Stderr, "\n") {
		if strings.Contains(l, connSecret) && l != "::add-mask::"+connSecret {
			t.Errorf("the connection string leaked into the log: %s", l)
		}
	}
	if !strings.Contains(r.Stdout, "::add-mask::"+connSecret) {
		t.Errorf("the connection string is not masked")
	}
	// Production is not fetched: the build venv installs the newest Django
	// the requirements allow, while the emulator serves every app with the
	// fixture's interpreter (its Django may be older and refuse the newer
	// static manifest); App Service would install the requirements itself.
	if r.outputs["outcome"] != "succeeded" || r.outputs["release-id"] == "" {
		t.Errorf("outputs %v: want outcome succeeded and a release-id", r.outputs)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "djdeploy-release-venv-*"))
	if len(left) > 0 {
		t.Errorf("the build virtualenv outlived the release: %v", left)
	}
}
