// Package github runs djdeploy as a GitHub Action (a Docker container
// action): it reads the step's inputs into settings, masks every secret
// before anything else is printed, folds each step into a log group, writes
// the outputs and the job summary, turns Django's check findings and errors
// into annotations, and records a GitHub deployment and, optionally, a pull
// request comment with the slot's preview URL.
package github

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/ci"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/sethvargo/go-githubactions"
)

// RunFunc runs what the settings ask for (v.String("command"): release,
// build, static, deploy, swap or purge) and returns its report. It may
// return a partial report with an error.
type RunFunc func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error)

// Options are the process's surroundings; tests replace them.
type Options struct {
	Getenv func(string) string
	Stdout io.Writer
	// HTTPClient talks to the GitHub API; nil means a client with a 30s
	// timeout.
	HTTPClient *http.Client
}

// runtimeSecrets are the runner's own tokens and the Azure credential
// secrets azidentity reads from the environment (not settings, so not in
// settings.All()), masked although djdeploy never prints them, so that
// nothing derived from them leaks either.
var runtimeSecrets = []string{"ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_RUNTIME_TOKEN", "GITHUB_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"}

// InputEnv is the variable the runner sets for an input: upper-cased,
// spaces to underscores, hyphens kept (INPUT_RESOURCE-GROUP).
func InputEnv(name string) string {
	return "INPUT_" + strings.ToUpper(strings.ReplaceAll(name, " ", "_"))
}

// Run runs djdeploy as a GitHub Action step and returns the exit code.
func Run(ctx context.Context, o Options, run RunFunc) int {
	getenv := o.Getenv
	gha := githubactions.New(githubactions.WithWriter(o.Stdout), githubactions.WithGetenv(getenv))
	rep := NewReporter(gha)

	// Masks first: before an error message or a setting can be printed.
	for _, s := range settings.All() {
		for _, sec := range append(s.SecretsIn(getenv(InputEnv(s.Name))), s.SecretsIn(getenv(s.EnvName()))...) {
			rep.Mask(sec)
		}
	}
	for _, k := range runtimeSecrets {
		rep.Mask(getenv(k))
	}

	if getenv("GITHUB_ACTIONS") != "true" {
		return fail(gha, problem.Usagef("use `djdeploy release` (or another command) outside GitHub Actions",
			"djdeploy ci github runs only inside a GitHub Actions step (GITHUB_ACTIONS is not true)"))
	}
	v, err := LoadSettings(getenv)
	if err != nil {
		return fail(gha, err)
	}
	for _, s := range v.Secrets() {
		rep.Mask(s)
	}

	if ports := v.List("github-loopback-forward"); len(ports) > 0 {
		stop, err := StartForwards(ctx, ports, "")
		if err != nil {
			return fail(gha, err)
		}
		defer stop()
	}

	ghctx, err := gha.Context()
	if err != nil {
		rep.Warnf("reading the GitHub context: %v", err)
		ghctx = &githubactions.GitHubContext{}
	}
	command := v.String("command")
	preview, err := ci.PreviewPR(v, PullRequestNumber(ghctx))
	if err != nil {
		return fail(gha, err)
	}
	if preview && ghctx.EventName == "pull_request" && ghctx.Event["action"] == "closed" && v.Get("preview-delete").Source == settings.FromDefault {
		// The closed pull request's event needs no input of its own.
		_ = v.Set("preview-delete", "true", settings.FromEnv)
	}
	logURL := ""
	if ghctx.Repository != "" && ghctx.RunID != 0 {
		logURL = fmt.Sprintf("%s/%s/actions/runs/%d", strings.TrimSuffix(ghctx.ServerURL, "/"), ghctx.Repository, ghctx.RunID)
		if ghctx.RunAttempt > 1 {
			logURL += fmt.Sprintf("/attempts/%d", ghctx.RunAttempt)
		}
	}

	var api *API
	if tok := v.String("github-token"); tok != "" && ghctx.Repository != "" {
		hc := o.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 30 * time.Second}
		}
		api, err = NewAPI(hc, ghctx.APIURL, tok, ghctx.Repository)
		if err != nil {
			rep.Warnf("GitHub API: %v", err)
			api = nil
		}
	}

	// A deployment record only for commands that change what a slot or
	// production serves.
	var deploymentID int64
	if api != nil && v.Bool("github-deployment") && changesSite(command) {
		deploymentID, err = api.StartDeployment(ctx, ghctx.SHA, v.String("github-environment"),
			fmt.Sprintf("djdeploy %s of %s", command, v.String("app")), logURL)
		if err != nil {
			rep.Warnf("not recording a GitHub deployment: %v (give the job `permissions: deployments: write`, or set github-deployment: false)", err)
		}
	}

	started := time.Now()
	r, runErr := run(ctx, v, rep)
	rep.EndGroup()
	r = ci.Finish(r, runErr, started)

	// Outputs, annotations and the summary are written whatever happened,
	// so a failed release still says which step failed and what was done.
	writeOutputs(gha, rep, getenv, report.Outputs(r))
	annotateChecks(gha, r.Checks, v.String("project"), getenv("GITHUB_WORKSPACE"))
	if v.Bool("job-summary") && getenv("GITHUB_STEP_SUMMARY") != "" {
		if err := fileCommand(func() { gha.AddStepSummary(report.Markdown(r, report.MarkdownOptions{Mermaid: true})) }); err != nil {
			rep.Warnf("writing the job summary: %v", err)
		}
	}

	if deploymentID != 0 {
		state, envURL := "success", r.URL
		if command == "deploy" {
			envURL = r.SlotURL
		}
		if runErr != nil {
			state = "failure"
		}
		desc := fmt.Sprintf("djdeploy %s %s", command, r.Outcome)
		if err := api.FinishDeployment(ctx, deploymentID, state, envURL, logURL, desc); err != nil {
			rep.Warnf("updating the GitHub deployment: %v", err)
		}
	}

	// A preview always comments; a release only with pr-comment, and only
	// while the slot serves its release (after a swap it serves the old one).
	if api != nil && (preview || v.Bool("pr-comment")) && (r.Previewing() || preview && v.Bool("preview-delete") && runErr == nil) {
		if pr := PullRequestNumber(ghctx); pr != 0 {
			body := ci.PreviewComment(r, ghctx.SHA, "<"+r.SlotURL+">", ci.Link("run log", logURL))
			if !r.Previewing() {
				body = ci.PreviewDeletedComment(r, ci.Link("run log", logURL))
			}
			if _, err := api.UpsertComment(ctx, pr, ci.PreviewMarker, body); err != nil {
				rep.Warnf("commenting the preview URL on pull request #%d: %v (give the job `permissions: pull-requests: write`)", pr, err)
			}
		}
	}

	if runErr != nil {
		return fail(gha, runErr)
	}
	return problem.ExitOK
}

// LoadSettings resolves settings the way the action sees them: inputs rank
// like environment variables (and above them, being the more specific), over
// djdeploy.yaml in the project folder, over the declared defaults.
func LoadSettings(getenv func(string) string) (*settings.Values, error) {
	project := getenv(InputEnv("project"))
	if project == "" {
		project = getenv("DJDEPLOY_PROJECT")
	}
	if project == "" {
		project = "."
	}
	// Relative to the working directory, which the runner makes the
	// workspace (/github/workspace in the container).
	v, err := settings.Load(nil, getenv, settings.FindFile(project), false)
	if err != nil {
		return nil, err
	}
	for _, s := range settings.All() {
		raw := strings.TrimSpace(getenv(InputEnv(s.Name)))
		if raw == "" {
			continue
		}
		if err := v.Set(s.Name, raw, settings.FromEnv); err != nil {
			if p, ok := problem.As(err); ok {
				return nil, &problem.Error{Usage: true, What: "input " + s.Name + ": " + strings.TrimPrefix(p.What, "environment variable "+s.EnvName()+": "), Fix: p.Fix}
			}
			return nil, fmt.Errorf("input %s: %w", s.Name, err)
		}
	}
	return v, nil
}

func changesSite(command string) bool {
	switch command {
	case "release", "deploy", "swap":
		return true
	}
	return false
}

// fail prints the error as an annotation (with its fix) and returns the exit
// code.
func fail(gha *githubactions.Action, err error) int {
	gha.WithFieldsMap(map[string]string{"title": "djdeploy"}).Errorf("%s", ci.FailureMessage(err))
	return problem.ExitCode(err)
}

// fileDelimiter is go-githubactions' fixed heredoc delimiter: a value that
// contains it would end the value early and inject outputs.
const fileDelimiter = "_GitHubActionsFileCommandDelimeter_"

func writeOutputs(gha *githubactions.Action, rep progress.Reporter, getenv func(string) string, outs map[string]string) {
	if getenv("GITHUB_OUTPUT") == "" {
		rep.Warnf("GITHUB_OUTPUT is not set: the step's outputs are not recorded")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(outs)) {
		val := outs[k]
		if strings.Contains(val, fileDelimiter) {
			rep.Warnf("output %s is not set: its value contains the file-command delimiter", k)
			continue
		}
		if err := fileCommand(func() { gha.SetOutput(k, val) }); err != nil {
			rep.Warnf("setting output %s: %v", k, err)
		}
	}
}

// fileCommand turns go-githubactions' panics on file-command errors into
// errors: a full disk must not crash the report of a finished release.
func fileCommand(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// annotateChecks annotates Django's findings on their files, named from
// the repository root (the workspace) as GitHub resolves them.
func annotateChecks(gha *githubactions.Action, checks []report.Check, project, workspace string) {
	for _, c := range checks {
		fields := map[string]string{"title": c.ID}
		if c.File != "" {
			fields["file"] = ci.RepoPath(c.File, project, workspace)
		}
		msg := c.Message
		if c.Hint != "" {
			msg += "\nHINT: " + c.Hint
		}
		a := gha.WithFieldsMap(fields)
		switch strings.ToLower(c.Level) {
		case "error", "critical":
			a.Errorf("%s", msg)
		case "warning":
			a.Warningf("%s", msg)
		default:
			a.Noticef("%s", msg)
		}
	}
}

// PullRequestNumber is the pull request the run belongs to, or 0.
func PullRequestNumber(c *githubactions.GitHubContext) int {
	if c == nil || c.Event == nil {
		return 0
	}
	if pr, ok := c.Event["pull_request"].(map[string]any); ok {
		if n, ok := pr["number"].(float64); ok {
			return int(n)
		}
	}
	if strings.HasPrefix(c.EventName, "pull_request") {
		if n, ok := c.Event["number"].(float64); ok {
			return int(n)
		}
	}
	return 0
}
