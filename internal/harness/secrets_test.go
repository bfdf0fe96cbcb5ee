package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// TestLeakScanner proves the scanner finds what it must (each encoding) and
// spares the runners' mask lines, so a clean scan below means something.
func TestLeakScanner(t *testing.T) {
	const secret = "s3cr3t/value+with=odd&chars"
	sec := secrets{"the secret": secret}
	for enc, v := range encodings(secret) {
		if found, _ := findLeaks("log line: "+v+" end", sec, false); len(found) == 0 {
			t.Errorf("the %s form %q is not found", enc, v)
		}
	}
	if found, _ := findLeaks("nothing secret here\n", sec, false); len(found) != 0 {
		t.Errorf("clean text: found %v", found)
	}
	masked := "::add-mask::" + secret + "\n##vso[task.setsecret]" + secret + "\nok\n"
	found, masks := findLeaks(masked, sec, true)
	if len(found) != 0 || len(masks) != 2 || masks[0] != secret || masks[1] != secret {
		t.Errorf("mask lines: found %v, mask values %q", found, masks)
	}
	if found, _ := findLeaks(masked, sec, false); len(found) == 0 {
		t.Error("mask lines are skipped even when not asked to")
	}
	if found, _ := findLeaks("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.sig", secrets{}, false); len(found) == 0 {
		t.Error("a bearer JWT is not recognised")
	}
}

// secretValues gives every secret setting (settings.All() with Secret) a
// known value, and the runtime tokens that are not settings. A secret
// setting declared later without a value here fails the test, so "every
// secret setting" stays true.
func secretValues(t *testing.T, s *shared, gh *fakeGitHub, ado *fakeADO) (bySetting map[string]string, sec secrets) {
	t.Helper()
	conn := s.emu.StorageConnectionString()
	known := map[string]string{
		"access-token":              s.emu.Token(),
		"storage-connection-string": conn,
		"github-token":              gh.apiToken,
		"azure-devops-token":        ado.token,
	}
	bySetting = map[string]string{}
	sec = secrets{}
	for _, st := range settings.All() {
		if !st.Secret {
			continue
		}
		v, ok := known[st.Name]
		if !ok {
			t.Fatalf("secret setting %s has no known value in this test: add one", st.Name)
		}
		bySetting[st.Name] = v
		sec.add(t, "setting "+st.Name, v)
	}
	sec.add(t, "storage account key", accountKey(t, conn))
	sec.add(t, "AZURE_CLIENT_SECRET", s.emu.ClientSecret())
	sec.add(t, "ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.reqToken)
	sec.add(t, "GitHub OIDC ID token", gh.idToken)
	sec.add(t, "Azure Pipelines OIDC token", ado.idToken)
	sec.add(t, "the emulator's admin secret", s.emu.AdminSecret())
	return bySetting, sec
}

// TestSecretsNeverPrinted (issue 9) runs releases with a known value in
// every secret setting and token: a successful one as the GitHub Action, a
// failing one (the slot's build fails) as an Azure Pipelines step, and a
// failing one from a shell with a wrong client secret. Every byte each run
// leaves behind is scanned for every secret, raw, base64 and URL-encoded.
func TestSecretsNeverPrinted(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	ado := newFakeADO(t)
	bySetting, sec := secretValues(t, s, gh, ado)
	// Runtime variables a runner sets that are secrets too.
	runtime := map[string]string{
		"AZURE_CLIENT_SECRET": s.emu.ClientSecret(), "SYSTEM_ACCESSTOKEN": ado.token,
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.reqToken, "ACTIONS_ID_TOKEN_REQUEST_URL": gh.idTokenURL(),
	}
	scanLog := func(t *testing.T) {
		log := string(s.emuLog.Bytes())
		if strings.TrimSpace(log) == "" {
			t.Error("the emulator's log is empty: nothing was scanned")
		}
		leaks(t, "the emulator's log", log, sec, false)
		scanFiles(t, s.emu.StateDir(), sec)
	}

	// An app setting on the slot that the pre-swap command prints, and a
	// build-env value: neither is a djdeploy secret, both are the app's.
	slotSecret, buildSecret := randomSecret("slot-db-password-"), randomSecret("build-env-secret-")
	sec.add(t, "a slot app setting", slotSecret)
	sec.add(t, "a build-env value", buildSecret)
	setSlotSetting(t, s, "SLOT_DB_PASSWORD", slotSecret)

	t.Run("github-success", func(t *testing.T) {
		ws := e2e.Project(t, "workspace")
		e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, secrets scan")
		in := releaseSettings(s)
		for k, v := range bySetting {
			in[k] = v
		}
		in["credential"] = "access-token"
		in["pre-swap-command"] = `echo "pre-swap sees $SLOT_DB_PASSWORD"`
		in["build-env"] = "BUILD_SECRET=" + buildSecret
		extra := map[string]string{}
		for k, v := range runtime {
			extra[k] = v
		}
		r := githubStep(t, s, gh, ws, in, extra)
		if r.Code != 0 {
			t.Fatalf("djdeploy ci github: %s", r)
		}
		if got := s.production(t); got != r.outputs["release-id"] {
			t.Errorf("production serves %q, the outputs say %q", got, r.outputs["release-id"])
		}
		masks := leaks(t, "stdout", r.Stdout, sec, true)
		for _, name := range []string{"setting access-token", "setting storage-connection-string", "setting github-token", "setting azure-devops-token", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "a slot app setting", "a build-env value"} {
			if !containsString(masks, sec[name]) {
				t.Errorf("%s is not masked with ::add-mask::", name)
			}
		}
		if !strings.Contains(r.Stdout, "pre-swap sees ***") {
			t.Errorf("the pre-swap command's output is not shown with the app setting hidden:\n%s", r.Stdout)
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "GITHUB_OUTPUT", r.output, sec, false)
		leaks(t, "GITHUB_ENV", r.envFile, sec, false)
		leaks(t, "the step summary", r.summary, sec, false)
		scanLog(t)
	})

	t.Run("pipelines-failed-deploy", func(t *testing.T) {
		before := s.production(t)
		dir := e2e.Project(t, "workspace")
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, a release whose build fails")
		set := releaseSettings(s)
		for k, v := range bySetting {
			set[k] = v
		}
		set["credential"] = "client-secret"
		// github-* settings are action inputs only: the templates have no
		// parameter for them; a runner's GITHUB_TOKEN reaches the step's
		// environment instead.
		delete(set, "github-token")
		params := pipelineParams(t, set)
		extra := map[string]string{"AZURE_CLIENT_SECRET": s.emu.ClientSecret(), "GITHUB_TOKEN": gh.apiToken}
		if err := s.emu.FailNextDeployment(app, releaseSettings(s)["slot"], emulator.AtBuild); err != nil {
			t.Fatal(err)
		}
		defer s.emu.FailNextDeployment(app, releaseSettings(s)["slot"], emulator.NoFailure)
		r := pipelineStep(t, s, ado, dir, params, extra)
		if r.Code != 1 {
			t.Fatalf("a failed deployment: want exit 1: %s", r)
		}
		if !regexp.MustCompile(`(?m)^##vso\[task\.logissue type=error;\].*BuildFailed`).MatchString(r.Stdout) {
			t.Errorf("no error issue with the deployment's cause (BuildFailed):\n%s", r.Stdout)
		}
		if !strings.Contains(r.summary, "at step `deploy`") {
			t.Errorf("the summary does not name the failed step:\n%s", r.summary)
		}
		if r.outputs["outcome"] != "failed" {
			t.Errorf("outcome output %q, want failed", r.outputs["outcome"])
		}
		if got := s.production(t); got != before {
			t.Errorf("production serves %q after a failed release, want the previous %q", got, before)
		}
		masks := leaks(t, "stdout", r.Stdout, sec, true)
		for _, name := range []string{"setting access-token", "setting storage-connection-string", "setting azure-devops-token", "AZURE_CLIENT_SECRET"} {
			if !containsString(masks, sec[name]) {
				t.Errorf("%s is not registered with task.setsecret", name)
			}
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "the uploaded summary", r.summary, sec, false)
		scanLog(t)
	})

	t.Run("github-failed-start", func(t *testing.T) {
		before := s.production(t)
		ws := e2e.Project(t, "workspace")
		e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello, a release that never starts")
		in := releaseSettings(s)
		for k, v := range bySetting {
			in[k] = v
		}
		in["credential"] = "github-oidc"
		extra := map[string]string{}
		for k, v := range runtime {
			extra[k] = v
		}
		if err := s.emu.FailNextDeployment(app, in["slot"], emulator.AtRuntime); err != nil {
			t.Fatal(err)
		}
		defer s.emu.FailNextDeployment(app, in["slot"], emulator.NoFailure)
		statuses := len(gh.statuses)
		r := githubStep(t, s, gh, ws, in, extra)
		if r.Code != 1 {
			t.Fatalf("an app that does not start: want exit 1: %s", r)
		}
		if !regexp.MustCompile(`(?m)^::error title=djdeploy::.*RuntimeFailed`).MatchString(r.Stdout) {
			t.Errorf("no error annotation with the cause (RuntimeFailed):\n%s", r.Stdout)
		}
		if r.outputs["outcome"] != "failed" || !strings.Contains(r.summary, "at step `deploy`") {
			t.Errorf("outcome %q; the summary must name the failed step:\n%s", r.outputs["outcome"], r.summary)
		}
		if got := gh.statuses[len(gh.statuses)-1]["state"]; len(gh.statuses) != statuses+2 || got != "failure" {
			t.Errorf("deployment statuses after a failed release: %d new, last %v; want in_progress then failure", len(gh.statuses)-statuses, got)
		}
		if got := s.production(t); got != before {
			t.Errorf("production serves %q after a failed release, want the previous %q", got, before)
		}
		leaks(t, "stdout", r.Stdout, sec, true)
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "GITHUB_OUTPUT", r.output, sec, false)
		leaks(t, "the step summary", r.summary, sec, false)
		scanLog(t)
	})

	// An app that prints its configuration as it fails to start: the
	// deployment's failed-instance log, which djdeploy prints, held the
	// slot's app-setting values.
	t.Run("shell-app-prints-settings-at-start", func(t *testing.T) {
		before := s.production(t)
		// Its own value: the app's own log in the emulator's state folder
		// holds what the app printed, as App Service's log stream would,
		// and the other subtests scan that folder for the shared secrets.
		printed := randomSecret("printed-by-the-app-")
		sec := maps(sec)
		sec.add(t, "a slot app setting the app prints", printed)
		setSlotSetting(t, s, "SLOT_DB_PASSWORD", printed)
		defer setSlotSetting(t, s, "SLOT_DB_PASSWORD", slotSecret)
		dir := e2e.Project(t, "workspace")
		settingsFile := filepath.Join(dir, "mysite", "settings.py")
		writeFile(t, settingsFile, readFile(t, settingsFile)+"\nimport os, sys\nif not os.environ.get('DJDEPLOY_BUILD'):\n    print('config: db password', os.environ.get('SLOT_DB_PASSWORD'), file=sys.stderr)\n    raise SystemExit(3)\n")
		env := baseEnv(t.TempDir())
		for name, v := range releaseSettings(s) {
			st, _ := settings.Lookup(name)
			env[st.EnvName()] = v
		}
		for name, v := range bySetting {
			st, _ := settings.Lookup(name)
			env[st.EnvName()] = v
		}
		env["DJDEPLOY_CREDENTIAL"] = "access-token"
		r := s.run(t, dir, env, "release")
		if r.Code != 1 {
			t.Fatalf("an app that fails at start: want exit 1: %s", r)
		}
		if !strings.Contains(r.Stderr, "config: db password ***") {
			t.Errorf("the failed instance's log is not shown with the setting hidden:\n%s", r.Stderr)
		}
		if got := s.production(t); got != before {
			t.Errorf("production serves %q after a failed release, want %q", got, before)
		}
		leaks(t, "stdout", r.Stdout, sec, false)
		leaks(t, "stderr", r.Stderr, sec, false)
	})

	t.Run("shell-wrong-client-secret", func(t *testing.T) {
		before := s.production(t)
		dir := e2e.Project(t, "workspace")
		wrong := randomSecret("wrong-client-secret-")
		sec := maps(sec)
		sec.add(t, "the wrong client secret", wrong)
		env := baseEnv(t.TempDir())
		for name, v := range releaseSettings(s) {
			st, _ := settings.Lookup(name)
			env[st.EnvName()] = v
		}
		for name, v := range bySetting {
			st, _ := settings.Lookup(name)
			env[st.EnvName()] = v
		}
		env["DJDEPLOY_CREDENTIAL"] = "client-secret"
		env["AZURE_CLIENT_SECRET"] = wrong
		env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = gh.reqToken
		r := s.run(t, dir, env, "release", "--json")
		if r.Code != 1 {
			t.Fatalf("a wrong client secret: want exit 1: %s", r)
		}
		if !strings.Contains(r.Stderr, "error:") || !strings.Contains(r.Stderr, "AADSTS7000215") {
			t.Errorf("the error does not say the client secret is wrong:\n%s", r.Stderr)
		}
		if got := s.production(t); got != before {
			t.Errorf("production serves %q after a failed release, want %q", got, before)
		}
		leaks(t, "stdout", r.Stdout, sec, false)
		leaks(t, "stderr", r.Stderr, sec, false)
		scanLog(t)
	})
}

// TestSecretsNeverPrintedOnRefusal (issue 17): the paths that refuse
// before a release starts print no secret either: a secret given as a flag,
// a SAS blob endpoint in the Action (masked, then refused), and a build
// whose settings module fails with a build-env value in its traceback.
func TestSecretsNeverPrintedOnRefusal(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	_, sec := secretValues(t, s, gh, newFakeADO(t))

	t.Run("secret flag", func(t *testing.T) {
		env := baseEnv(t.TempDir())
		r := s.run(t, t.TempDir(), env, "release", "--access-token", s.emu.Token())
		if r.Code != 2 || !strings.Contains(r.Stderr, "DJDEPLOY_ACCESS_TOKEN") {
			t.Fatalf("--access-token on the command line: want exit 2 naming the variable: %s", r)
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "stdout", r.Stdout, sec, false)
	})

	t.Run("github SAS blob endpoint", func(t *testing.T) {
		sas := "sv=2022-11-02&sp=rwdl&se=2031-01-01T00:00:00Z&sig=" + randomSecret("sas%2Bsig")
		endpoint := "http://storage.example.com/?" + sas
		sec := maps(sec)
		sec.add(t, "the SAS blob endpoint", endpoint)
		sec.add(t, "the SAS", sas)
		in := releaseSettings(s)
		delete(in, "storage-connection-string")
		in["blob-endpoint"] = endpoint
		in["access-token"] = s.emu.Token()
		r := githubStep(t, s, gh, e2e.Project(t, "workspace"), in, nil)
		if r.Code != 2 || !strings.Contains(r.Stdout, "plain http") {
			t.Fatalf("a SAS endpoint over plain http: want exit 2: %s", r)
		}
		masks := leaks(t, "stdout", r.Stdout, sec, true)
		// The command escapes % as %25, as GitHub's toolkit does.
		if !containsString(masks, strings.ReplaceAll(endpoint, "%", "%25")) {
			t.Errorf("the SAS endpoint is not masked with ::add-mask:: (masks %q)", masks)
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "GITHUB_OUTPUT", r.output, sec, false)
		leaks(t, "the step summary", r.summary, sec, false)
	})

	t.Run("build traceback", func(t *testing.T) {
		value := randomSecret("build-env-in-a-traceback-")
		sec := maps(sec)
		sec.add(t, "the build-env value", value)
		dir := e2e.Project(t, "workspace")
		settingsFile := filepath.Join(dir, "mysite", "settings.py")
		writeFile(t, settingsFile, readFile(t, settingsFile)+"\nimport os\nraise RuntimeError('bad key ' + os.environ['API_KEY'])\n")
		env := baseEnv(t.TempDir())
		r := s.run(t, dir, env, "build", "--project", dir, "--python", s.py, "--out", t.TempDir(), "--build-env", "API_KEY="+value)
		if r.Code != 1 || !strings.Contains(r.Stderr, "bad key ***") {
			t.Fatalf("a settings module that fails quoting a build-env value: want exit 1 with the value hidden: %s", r)
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "stdout", r.Stdout, sec, false)
	})
}

// setSlotSetting adds one app setting to the release slot through ARM, as
// an operator would in the portal.
func setSlotSetting(t *testing.T, s *shared, name, value string) {
	t.Helper()
	e := s.emu.Env()
	app, slot := e["DJDEPLOY_APP"], e["DJDEPLOY_SLOT"]
	settings := map[string]string{}
	for _, a := range s.emu.State().Apps {
		for _, sl := range a.Slots {
			if a.Name == app && sl.Name == slot {
				settings = sl.AppSettings
			}
		}
	}
	settings[name] = value
	body, _ := json.Marshal(map[string]any{"properties": settings})
	u := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Web/sites/%s/slots/%s/config/appsettings?api-version=2023-12-01",
		s.emu.ARMEndpoint(), s.emu.Subscription(), e["DJDEPLOY_RESOURCE_GROUP"], app, slot)
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.emu.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("setting %s on the slot: %s", name, resp.Status)
	}
}

func maps(s secrets) secrets {
	out := secrets{}
	for k, v := range s {
		out[k] = v
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// TestStaticSyncRedactsStorageSecrets (issue 9): errors from `djdeploy
// static sync` with a wrong account key, a wrong SAS, a SAS endpoint URL
// and a malformed key name what is wrong without the key or the signature.
func TestStaticSyncRedactsStorageSecrets(t *testing.T) {
	s := fixture(t)
	conn := s.emu.StorageConnectionString()
	var blobEndpoint string
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "BlobEndpoint" {
			blobEndpoint = strings.TrimSuffix(v, "/")
		}
	}
	if blobEndpoint == "" {
		t.Fatalf("no BlobEndpoint in the emulator's connection string")
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "css", "site.css"), "body { color: red }\n")

	rnd := func() []byte {
		b := make([]byte, 64)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	key := base64.StdEncoding.EncodeToString(rnd())
	sig := base64.StdEncoding.EncodeToString(rnd()[:32])
	sas := "sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https,http&sig=" + url.QueryEscape(sig)
	badKey := "not*base64*" + randomSecret("")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		secrets  []string
		wantWhat string
	}{
		{"wrong account key", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": strings.Replace(conn, accountKey(t, conn), key, 1)},
			[]string{key}, "error:"},
		{"wrong SAS", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "BlobEndpoint=" + blobEndpoint + ";SharedAccessSignature=" + sas},
			[]string{sig, sas}, "error:"},
		{"SAS in the endpoint URL", map[string]string{"DJDEPLOY_BLOB_ENDPOINT": blobEndpoint + "/?" + sas},
			[]string{sig, sas}, "error:"},
		{"malformed account key", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": strings.Replace(conn, accountKey(t, conn), badKey, 1)},
			[]string{badKey}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv(t.TempDir())
			env["DJDEPLOY_STATIC_CONTAINER"] = "redact-test"
			env["DJDEPLOY_LOCK_TIMEOUT"] = "10s"
			for k, v := range tc.env {
				env[k] = v
			}
			r := s.run(t, src, env, "static", "sync", "--source", src)
			if r.Code == 0 {
				t.Fatalf("static sync succeeded with bad credentials: %s", r)
			}
			if !strings.Contains(r.Stderr, tc.wantWhat) {
				t.Errorf("stderr does not say %q:\n%s", tc.wantWhat, r.Stderr)
			}
			sec := secrets{}
			for i, v := range tc.secrets {
				sec.add(t, "secret "+string(rune('a'+i)), v)
			}
			for k, v := range tc.env {
				sec.add(t, k, v)
			}
			out := r.Stdout + r.Stderr
			leaks(t, "output", out, sec, false)
			if i := strings.Index(strings.ToLower(out), "sig="); i >= 0 && !strings.HasPrefix(out[i+4:], "REDACTED") {
				t.Errorf("output has a sig= value: ...%s...", out[i:min(len(out), i+20)])
			}
		})
	}
}
