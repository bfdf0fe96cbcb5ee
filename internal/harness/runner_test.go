package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/settings"
	"gopkg.in/yaml.v3"
)

// outputNames are the outputs action.yml promises (issue 8).
var outputNames = []string{"url", "slot-url", "release-id", "static-uploaded", "static-skipped", "purged-paths", "deployment-id", "duration"}

// releaseSettings are the settings both CIs pass, by setting name: the
// emulator's endpoints and resources, Debian's Python, and short timeouts so
// a failure ends fast (no test asserts on time).
func releaseSettings(s *shared) map[string]string {
	e := s.emu.Env()
	return map[string]string{
		"resource-group":            e["DJDEPLOY_RESOURCE_GROUP"],
		"app":                       e["DJDEPLOY_APP"],
		"slot":                      e["DJDEPLOY_SLOT"],
		"project":                   ".",
		"python":                    s.py,
		"fix-settings":              "true",
		"check-release":             "true",
		"client-id":                 s.emu.ClientID(),
		"tenant-id":                 s.emu.Tenant(),
		"subscription":              s.emu.Subscription(),
		"arm-endpoint":              s.emu.ARMEndpoint(),
		"arm-audience":              e["DJDEPLOY_ARM_AUDIENCE"],
		"authority-host":            s.emu.AuthorityHost(),
		"ca-file":                   s.emu.CAFile(),
		"storage-connection-string": s.emu.StorageConnectionString(),
		"static-container":          e["DJDEPLOY_STATIC_CONTAINER"],
		"static-prefix":             e["DJDEPLOY_STATIC_PREFIX"],
		"cdn-profile":               e["DJDEPLOY_CDN_PROFILE"],
		"cdn-endpoint":              e["DJDEPLOY_CDN_ENDPOINT"],
		"health-path":               "/healthz",
		"warmup-timeout":            "30s",
		"verify-timeout":            "30s",
		"deploy-timeout":            "3m",
		"swap-timeout":              "2m",
		"purge-timeout":             "1m",
		"lock-timeout":              "30s",
	}
}

// ghRun is one run of the action's step and what it left behind.
type ghRun struct {
	step
	env                      map[string]string
	output, summary, envFile string
	outputs                  map[string]string
}

// githubStep runs `djdeploy ci github` (what the image's entrypoint execs)
// with the environment the runner gives a Docker action: INPUT_* with
// hyphens kept, GITHUB_* with the file commands as files, CI=true, and the
// OIDC runtime. inputs are by setting name.
func githubStep(t *testing.T, s *shared, gh *fakeGitHub, workspace string, inputs map[string]string, extra map[string]string) ghRun {
	t.Helper()
	fc := t.TempDir() // /github/file_commands
	event := writeFile(t, filepath.Join(t.TempDir(), "event.json"), `{"ref":"refs/heads/main","repository":{"full_name":"`+gh.repo+`"}}`)
	env := baseEnv(t.TempDir())
	for k, v := range map[string]string{
		"GITHUB_ACTIONS": "true", "CI": "true",
		"GITHUB_OUTPUT": writeFile(t, filepath.Join(fc, "set_output_1"), ""), "GITHUB_STEP_SUMMARY": writeFile(t, filepath.Join(fc, "step_summary_1"), ""),
		"GITHUB_ENV": writeFile(t, filepath.Join(fc, "set_env_1"), ""), "GITHUB_STATE": writeFile(t, filepath.Join(fc, "save_state_1"), ""),
		"GITHUB_PATH":      writeFile(t, filepath.Join(fc, "add_path_1"), ""),
		"GITHUB_WORKSPACE": workspace, "GITHUB_REPOSITORY": gh.repo, "GITHUB_REPOSITORY_OWNER": strings.Split(gh.repo, "/")[0],
		"GITHUB_RUN_ID": "9001", "GITHUB_RUN_NUMBER": "12", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_WORKFLOW": "deploy",
		"GITHUB_JOB": "release", "GITHUB_ACTION": "__djdeploy_djdeploy", "GITHUB_ACTOR": "octocat",
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": gh.apiURL(), "GITHUB_GRAPHQL_URL": gh.apiURL() + "/graphql",
		"GITHUB_SHA": "4f1c0d5e6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
		"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": event,
		"ACTIONS_ID_TOKEN_REQUEST_URL": gh.idTokenURL(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.reqToken,
		"RUNNER_OS": "Linux", "RUNNER_TEMP": t.TempDir(),
	} {
		env[k] = v
	}
	for name, v := range inputs {
		if _, ok := settings.Lookup(name); !ok {
			t.Fatalf("input %s is not a declared setting", name)
		}
		env["INPUT_"+strings.ToUpper(name)] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	r := ghRun{step: s.run(t, workspace, env, "ci", "github"), env: env}
	r.output, r.summary, r.envFile = readFile(t, env["GITHUB_OUTPUT"]), readFile(t, env["GITHUB_STEP_SUMMARY"]), readFile(t, env["GITHUB_ENV"])
	r.outputs = parseFileCommand(t, r.output)
	return r
}

// parseFileCommand reads name=value and name<<DELIM ... DELIM entries.
func parseFileCommand(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" {
			continue
		}
		if name, delim, ok := strings.Cut(l, "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("file command %s: no closing %s:\n%s", name, delim, s)
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		name, val, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("file command line %q is neither name=value nor name<<delimiter", l)
		}
		out[name] = val
	}
	return out
}

// adoRun is one run of the templates' djdeploy step.
type adoRun struct {
	step
	env         map[string]string
	outputs     map[string]string // by output variable name (camelCase)
	summaryPath string
	summary     string
}

// templateEnv reads the env: block of the step that runs djdeploy in
// pipelines/steps/djdeploy.yml: environment variable → parameter (or a
// macro such as $(System.AccessToken)).
func templateEnv(t *testing.T, s *shared) map[string]string {
	t.Helper()
	var doc struct {
		Steps []struct {
			Bash string            `yaml:"bash"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	}
	b := readFile(t, filepath.Join(s.root, "pipelines", "steps", "djdeploy.yml"))
	if err := yaml.Unmarshal([]byte(b), &doc); err != nil {
		t.Fatalf("pipelines/steps/djdeploy.yml: %v", err)
	}
	for _, st := range doc.Steps {
		if strings.Contains(st.Bash, "djdeploy ci azure-pipelines") {
			return st.Env
		}
	}
	t.Fatal("pipelines/steps/djdeploy.yml has no step running djdeploy ci azure-pipelines")
	return nil
}

var (
	paramRef = regexp.MustCompile(`^\$\{\{\s*parameters\.(\w+)\s*\}\}$`)
	coalesce = regexp.MustCompile(`^\$\{\{\s*coalesce\(parameters\.(\w+),\s*'([^']*)'\)\s*\}\}$`)
	macroRef = regexp.MustCompile(`^\$\(([\w.]+)\)$`)
)

// pipelineStep runs `djdeploy ci azure-pipelines` as the steps template's
// script step does: every env entry of the template expanded with params
// (by parameter name; a parameter not passed is ”, as the template's
// default), the job's variables for macros, and the agent's predefined
// variables. The bash wrapper's one line of logic (subscription from the
// connection) is mirrored.
func pipelineStep(t *testing.T, s *shared, ado *fakeADO, dir string, params map[string]string, extra map[string]string) adoRun {
	t.Helper()
	agentTemp := t.TempDir()
	vars := map[string]string{"System.AccessToken": ado.token}
	env := baseEnv(t.TempDir())
	for k, v := range map[string]string{
		"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": agentTemp, "AGENT_OS": "Linux", "SYSTEM_JOBID": "0a1b2c3d-job",
		"SYSTEM_COLLECTIONURI": ado.collectionURI(), "SYSTEM_TEAMPROJECT": "shop", "SYSTEM_TEAMPROJECTID": ado.project,
		"BUILD_BUILDID": fmt.Sprint(ado.buildID), "BUILD_SOURCEVERSION": "4f1c0d5e6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
		"BUILD_SOURCESDIRECTORY": dir, "BUILD_REPOSITORY_PROVIDER": "TfsGit", "SYSTEM_OIDCREQUESTURI": ado.oidcURI(),
	} {
		env[k] = v
	}
	used := map[string]bool{}
	for name, val := range templateEnv(t, s) {
		switch {
		case paramRef.MatchString(val):
			p := paramRef.FindStringSubmatch(val)[1]
			env[name], used[p] = params[p], true
		case coalesce.MatchString(val):
			m := coalesce.FindStringSubmatch(val)
			env[name], used[m[1]] = params[m[1]], true
			if env[name] == "" {
				env[name] = m[2]
			}
		default:
			env[name] = val
		}
		if m := macroRef.FindStringSubmatch(env[name]); m != nil {
			env[name] = vars[m[1]]
		}
	}
	for p := range params {
		if !used[p] {
			t.Fatalf("parameter %s is not mapped by pipelines/steps/djdeploy.yml", p)
		}
	}
	if env["AZURE_SUBSCRIPTION_ID"] == "" {
		env["AZURE_SUBSCRIPTION_ID"] = env["DJDEPLOY_CONNECTION_SUBSCRIPTION_ID"]
	}
	for k, v := range extra {
		env[k] = v
	}
	r := adoRun{step: s.run(t, dir, env, "ci", "azure-pipelines"), env: env, outputs: map[string]string{}}
	for _, l := range strings.Split(r.Stdout, "\n") {
		rest, ok := strings.CutPrefix(l, "##vso[task.setvariable ")
		if !ok {
			continue
		}
		props, data, _ := strings.Cut(rest, "]")
		p := map[string]string{}
		for _, kv := range strings.Split(props, ";") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				p[k] = v
			}
		}
		if p["isoutput"] != "true" {
			t.Errorf("output variable %s is not isoutput=true: %s", p["variable"], l)
		}
		r.outputs[p["variable"]] = strings.NewReplacer("%0D", "\r", "%0A", "\n", "%AZP25", "%").Replace(data)
	}
	if m := regexp.MustCompile(`(?m)^##vso\[task\.uploadsummary\](.*)$`).FindStringSubmatch(r.Stdout); m != nil {
		r.summaryPath = m[1]
		r.summary = readFile(t, m[1])
	}
	return r
}

// pipelineParams turns settings (by name) into template parameters.
func pipelineParams(t *testing.T, set map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, v := range set {
		s, ok := settings.Lookup(name)
		if !ok {
			t.Fatalf("%s is not a declared setting", name)
		}
		out[s.CamelName()] = v
	}
	return out
}

// kebab maps an output variable name back to the action's output name
// (slotUrl -> slot-url).
func kebab(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('-')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// groups are the titles of the log groups opened by lines starting with
// open, checking each is closed before the next opens.
func groups(t *testing.T, out, open, close string) []string {
	t.Helper()
	var titles []string
	inGroup := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, open):
			if inGroup {
				t.Errorf("group %q opened inside another", l)
			}
			titles = append(titles, strings.TrimPrefix(l, open))
			inGroup = true
		case l == close:
			inGroup = false
		}
	}
	if inGroup {
		t.Errorf("the last group is never closed")
	}
	return titles
}

// masksFirst checks the mask lines (prefix) come before any other output and
// that each value in want is among them.
func masksFirst(t *testing.T, out, prefix string, want map[string]string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	masked := map[string]bool{}
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], prefix); i++ {
		masked[strings.TrimPrefix(lines[i], prefix)] = true
	}
	if i == 0 {
		t.Errorf("the first line is not %s:\n%s", prefix, out)
	}
	for _, l := range lines[i:] {
		if strings.HasPrefix(l, prefix) && !strings.Contains(l, "%") {
			// A late mask is a value printed unmasked before it.
			t.Errorf("mask after other output: %s", l[:min(len(l), len(prefix)+6)]+"...")
		}
	}
	for name, v := range want {
		if !masked[v] {
			t.Errorf("%s is not masked before other output", name)
		}
	}
}

// TestRunnerHarness runs the built binary as each CI runs a step, one
// release per CI against the same emulator, and checks both front ends
// release the same way and report the same outputs, with no secret in
// anything they leave behind.
func TestRunnerHarness(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	ado := newFakeADO(t)
	conn := s.emu.StorageConnectionString()
	var ghOut, adoOut map[string]string

	t.Run("github", func(t *testing.T) {
		ws := e2e.Project(t, "workspace")
		// A stylesheet no earlier test on this emulator released, so this
		// release has static files to upload whatever ran before it.
		css := filepath.Join(ws, "pages/static/pages/css/site.css")
		if err := os.WriteFile(css, append([]byte(readFile(t, css)), "\n.runner-harness-github { color: #24292f; }\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		in := releaseSettings(s)
		in["credential"] = "github-oidc"
		in["github-token"] = gh.apiToken
		r := githubStep(t, s, gh, ws, in, nil)
		if r.Code != 0 {
			t.Fatalf("djdeploy ci github: %s", r)
		}
		ghOut = r.outputs
		for _, k := range outputNames {
			if _, ok := r.outputs[k]; !ok {
				t.Errorf("GITHUB_OUTPUT has no %s:\n%s", k, r.output)
			}
		}
		for _, k := range []string{"url", "release-id", "deployment-id", "duration", "static-uploaded"} {
			if r.outputs[k] == "" || r.outputs[k] == "0" {
				t.Errorf("output %s is %q", k, r.outputs[k])
			}
		}
		// After the swap the slot serves the release that was live before:
		// slot-url must not offer it as this release's preview.
		if r.outputs["slot-url"] != "" {
			t.Errorf("slot-url %q after a swap", r.outputs["slot-url"])
		}
		if !regexp.MustCompile(`(?m)^purged-paths<<\S+$`).MatchString(r.output) {
			t.Errorf("purged-paths is not written in the multi-line delimiter form:\n%s", r.output)
		}
		if !strings.Contains(r.summary, "| Step | Status | Duration | Detail |") || !strings.Contains(r.summary, "```mermaid\ngantt") {
			t.Errorf("the step summary lacks the steps table or the Mermaid gantt:\n%s", r.summary)
		}
		masksFirst(t, r.Stdout, "::add-mask::", map[string]string{
			"the GitHub token": gh.apiToken, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.reqToken, "the storage connection string": conn,
		})
		if got := groups(t, r.Stdout, "::group::", "::endgroup::"); strings.Join(got, ",") != strings.Join(release.Steps, ",") {
			t.Errorf("log groups %v, want one per step %v", got, release.Steps)
		}
		if gh.idRequests == 0 {
			t.Errorf("the OIDC token endpoint was never asked: the release did not sign in with github-oidc")
		}
		if len(gh.deploys) != 1 {
			t.Fatalf("GitHub deployments created: %d, want 1", len(gh.deploys))
		}
		if d := gh.deploys[0]; d["ref"] != r.env["GITHUB_SHA"] || d["environment"] != "production" {
			t.Errorf("deployment %v: want ref %s, environment production", d, r.env["GITHUB_SHA"])
		}
		var states []string
		for _, st := range gh.statuses {
			states = append(states, fmt.Sprint(st["state"]))
		}
		if strings.Join(states, ",") != "in_progress,success" {
			t.Errorf("deployment statuses %v, want in_progress then success", states)
		}
		if len(gh.statuses) == 2 {
			last := gh.statuses[1]
			if last["environment_url"] != r.outputs["url"] || last["log_url"] != "https://github.com/octo/shop/actions/runs/9001" {
				t.Errorf("success status: environment_url %v (want %s), log_url %v", last["environment_url"], r.outputs["url"], last["log_url"])
			}
		}
		if got := s.production(t); got != r.outputs["release-id"] {
			t.Errorf("production serves release %q, the outputs say %q", got, r.outputs["release-id"])
		}
		sec := secrets{}
		sec.add(t, "storage connection string", conn)
		sec.add(t, "storage account key", accountKey(t, conn))
		sec.add(t, "GitHub token", gh.apiToken)
		sec.add(t, "ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.reqToken)
		sec.add(t, "GitHub OIDC ID token", gh.idToken)
		masks := leaks(t, "stdout", r.Stdout, sec, true)
		if len(masks) == 0 {
			t.Errorf("no ::add-mask:: lines")
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "GITHUB_OUTPUT", r.output, sec, false)
		leaks(t, "GITHUB_ENV", r.envFile, sec, false)
		leaks(t, "GITHUB_STATE", readFile(t, r.env["GITHUB_STATE"]), sec, false)
		leaks(t, "the step summary", r.summary, sec, false)
		leaks(t, "the emulator's log", string(s.emuLog.Bytes()), sec, false)
	})

	t.Run("azure-pipelines", func(t *testing.T) {
		if ghOut == nil {
			t.Skip("needs the GitHub release first")
		}
		dir := e2e.Project(t, "workspace")
		// A second release: a changed template and css file, so a new
		// release id results and some static files change.
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello from Azure Pipelines")
		if err := os.WriteFile(filepath.Join(dir, "pages/static/pages/css/site.css"),
			append([]byte(readFile(t, filepath.Join(dir, "pages/static/pages/css/site.css"))), "\n.pipelines { color: #0078d4; }\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		set := releaseSettings(s)
		set["credential"] = "azure-pipelines"
		params := pipelineParams(t, set)
		params["serviceConnection"] = ado.conn
		r := pipelineStep(t, s, ado, dir, params, nil)
		if r.Code != 0 {
			t.Fatalf("djdeploy ci azure-pipelines: %s", r)
		}
		adoOut = map[string]string{}
		for k, v := range r.outputs {
			adoOut[kebab(k)] = v
		}
		for _, k := range outputNames {
			if _, ok := adoOut[k]; !ok {
				t.Errorf("no output variable for %s:\n%s", k, r.Stdout)
			}
		}
		id := adoOut["release-id"]
		if id == "" || id == ghOut["release-id"] {
			t.Fatalf("release id %q after a changed template; the GitHub release was %q", id, ghOut["release-id"])
		}
		masksFirst(t, r.Stdout, "##vso[task.setsecret]", map[string]string{"SYSTEM_ACCESSTOKEN": ado.token, "the storage connection string": conn})
		if got := groups(t, r.Stdout, "##[group]", "##[endgroup]"); strings.Join(got, ",") != strings.Join(release.Steps, ",") {
			t.Errorf("log groups %v, want one per step %v", got, release.Steps)
		}
		if r.summaryPath == "" || !filepath.IsAbs(r.summaryPath) || !strings.Contains(r.summary, "| Step | Status | Duration | Detail |") {
			t.Errorf("task.uploadsummary %q: want an absolute path to the summary with the steps table:\n%s", r.summaryPath, r.summary)
		}
		if ado.idRequests == 0 {
			t.Errorf("the OIDC endpoint was never asked: the release did not sign in with AzurePipelinesCredential")
		}
		if ado.options == 0 || ado.areas == 0 {
			t.Errorf("location discovery not exercised: OPTIONS %d, ResourceAreas %d", ado.options, ado.areas)
		}
		if strings.Join(ado.tags, ",") != "djdeploy-"+id {
			t.Errorf("build tags %v, want djdeploy-%s", ado.tags, id)
		}
		if strings.Contains(r.Stdout, "##vso[build.addbuildtag]") || strings.Contains(r.Stdout, "tagging the run through the API") {
			t.Errorf("the run fell back to the logging-command tag:\n%s", r.Stdout)
		}
		if got := s.production(t); got != id {
			t.Errorf("production serves release %q, the outputs say %q", got, id)
		}
		sec := secrets{}
		sec.add(t, "storage connection string", conn)
		sec.add(t, "storage account key", accountKey(t, conn))
		sec.add(t, "SYSTEM_ACCESSTOKEN", ado.token)
		sec.add(t, "Azure Pipelines OIDC token", ado.idToken)
		sec.add(t, "GitHub token", gh.apiToken)
		sec.add(t, "ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.reqToken)
		sec.add(t, "GitHub OIDC ID token", gh.idToken)
		if masks := leaks(t, "stdout", r.Stdout, sec, true); len(masks) == 0 {
			t.Errorf("no ##vso[task.setsecret] lines")
		}
		leaks(t, "stderr", r.Stderr, sec, false)
		leaks(t, "the uploaded summary", r.summary, sec, false)
		leaks(t, "the emulator's log", string(s.emuLog.Bytes()), sec, false)
		scanFiles(t, s.emu.StateDir(), sec)
	})

	t.Run("equivalent", func(t *testing.T) {
		if ghOut == nil || adoOut == nil {
			t.Skip("needs both releases")
		}
		if a, b := strings.Join(keys(ghOut), ","), strings.Join(keys(adoOut), ","); a != b {
			t.Errorf("outputs differ: GitHub %s, Azure Pipelines %s", a, b)
		}
		for _, k := range []string{"url", "slot-url"} {
			if ghOut[k] != adoOut[k] {
				t.Errorf("%s: GitHub %q, Azure Pipelines %q (same app and slot)", k, ghOut[k], adoOut[k])
			}
		}
		for _, o := range []map[string]string{ghOut, adoOut} {
			if o["outcome"] != "succeeded" {
				t.Errorf("outcome %q", o["outcome"])
			}
		}
	})
}
