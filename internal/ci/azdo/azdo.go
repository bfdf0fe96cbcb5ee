// Package azdo runs djdeploy in an Azure Pipelines script step (the
// templates in pipelines/ call `djdeploy ci azure-pipelines`): it registers
// every secret before anything else is printed, folds each step into a log
// group, sets output variables, records errors and Django's check findings
// as issues, uploads the summary, tags the run with the release id and,
// optionally, comments the slot's preview URL on an Azure Repos pull request.
package azdo

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/djdeploy/djdeploy/internal/ci"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// RunFunc runs what the settings ask for (v.String("command")) and returns
// its report. It may return a partial report with an error.
type RunFunc func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error)

// Options are the process's surroundings; tests replace them.
type Options struct {
	Getenv func(string) string
	Stdout io.Writer
}

// runtimeSecrets are the agent's tokens and the Azure credential secrets
// azidentity reads from the environment (not settings, so not in
// settings.All()), registered as secrets although djdeploy never prints
// them: a value passed as a plain variable is not masked by the agent.
var runtimeSecrets = []string{"SYSTEM_ACCESSTOKEN", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"}

// Run runs djdeploy as an Azure Pipelines step and returns the exit code.
// Settings come from the environment (the templates map each parameter the
// user set to its DJDEPLOY_*/AZURE_* variable) over djdeploy.yaml.
func Run(ctx context.Context, o Options, run RunFunc) int {
	getenv := o.Getenv
	log := agentLog{o.Stdout}
	rep := ci.NewReporter(log)

	for _, s := range settings.All() {
		for _, sec := range s.SecretsIn(getenv(s.EnvName())) {
			rep.Mask(sec)
		}
	}
	for _, k := range runtimeSecrets {
		rep.Mask(getenv(k))
	}

	if !strings.EqualFold(getenv("TF_BUILD"), "true") {
		return fail(log, problem.Usagef("use `djdeploy release` (or another command) outside Azure Pipelines",
			"djdeploy ci azure-pipelines runs only inside an Azure Pipelines step (TF_BUILD is not True)"))
	}
	project := getenv("DJDEPLOY_PROJECT")
	if project == "" {
		project = "."
	}
	v, err := settings.Load(nil, getenv, settings.FindFile(project), false)
	if err != nil {
		return fail(log, err)
	}
	for _, s := range v.Secrets() {
		rep.Mask(s)
	}
	// Azure Repos gives the pull request's id; GitHub repositories its number.
	prNumber, _ := strconv.Atoi(getenv("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER"))
	if prNumber == 0 {
		prNumber, _ = strconv.Atoi(getenv("SYSTEM_PULLREQUEST_PULLREQUESTID"))
	}
	preview, err := ci.PreviewPR(v, prNumber)
	if err != nil {
		return fail(log, err)
	}

	started := time.Now()
	r, runErr := run(ctx, v, rep)
	rep.EndGroup()
	r = ci.Finish(r, runErr, started)

	outs := report.Outputs(r)
	for _, k := range slices.Sorted(maps.Keys(outs)) {
		log.line(Command("task.setvariable", map[string]string{"variable": OutputName(k), "isoutput": "true"}, outs[k]))
	}
	for _, c := range r.Checks {
		typ := "warning"
		if l := strings.ToLower(c.Level); l == "error" || l == "critical" {
			typ = "error"
		}
		props := map[string]string{"type": typ, "code": c.ID}
		if c.File != "" {
			// From the repository root, as the agent resolves sourcepath.
			props["sourcepath"] = ci.RepoPath(c.File, v.String("project"), getenv("BUILD_SOURCESDIRECTORY"))
		}
		msg := c.ID + ": " + c.Message
		if c.Hint != "" {
			msg += " HINT: " + c.Hint
		}
		log.line(Command("task.logissue", props, msg))
	}
	if v.Bool("job-summary") {
		if err := uploadSummary(log, getenv, report.Markdown(r, report.MarkdownOptions{})); err != nil {
			rep.Warnf("writing the summary: %v", err)
		}
	}

	tok := v.String("azure-devops-token")
	collection, projectID := getenv("SYSTEM_COLLECTIONURI"), getenv("SYSTEM_TEAMPROJECTID")
	if projectID == "" {
		projectID = getenv("SYSTEM_TEAMPROJECT")
	}
	var api *API
	if tok != "" && collection != "" && projectID != "" {
		api = NewAPI(collection, tok, projectID)
	}

	if v.Bool("azure-devops-build-tag") && r.ReleaseID != "" {
		tagged := false
		if id, err := strconv.Atoi(getenv("BUILD_BUILDID")); err == nil && api != nil {
			if err := api.TagBuild(ctx, id, "djdeploy-"+r.ReleaseID); err != nil {
				rep.Warnf("tagging the run through the API: %v; using a logging command instead", err)
			} else {
				tagged = true
			}
		}
		if !tagged {
			// Needs no token; the tag appears when the step ends.
			log.line(Command("build.addbuildtag", nil, "djdeploy-"+r.ReleaseID))
		}
	}

	// A preview always comments; a release only with pr-comment, and only
	// while the slot serves its release (after a swap it serves the old one).
	if (preview || v.Bool("pr-comment")) && (r.Previewing() || preview && v.Bool("preview-delete") && runErr == nil) {
		pr, _ := strconv.Atoi(getenv("SYSTEM_PULLREQUEST_PULLREQUESTID"))
		switch {
		case pr == 0:
		case getenv("BUILD_REPOSITORY_PROVIDER") != "TfsGit":
			rep.Warnf("pr-comment: the repository is not in Azure Repos (%s); no comment posted", getenv("BUILD_REPOSITORY_PROVIDER"))
		case api == nil:
			rep.Warnf("pr-comment: map SYSTEM_ACCESSTOKEN: $(System.AccessToken) in the step's env to comment on the pull request")
		default:
			body := ci.PreviewComment(r, getenv("BUILD_SOURCEVERSION"), r.SlotURL, ci.Link("run", runURL(getenv)))
			if !r.Previewing() {
				body = ci.PreviewDeletedComment(r, ci.Link("run", runURL(getenv)))
			}
			if _, err := api.UpsertThread(ctx, getenv("BUILD_REPOSITORY_ID"), pr, ci.PreviewMarker, body); err != nil {
				rep.Warnf("commenting the preview URL on pull request %d: %v (allow the build service to contribute to pull requests)", pr, err)
			}
		}
	}

	if runErr != nil {
		return fail(log, runErr)
	}
	return problem.ExitOK
}

// OutputName is the output variable for a report output: camelCase, as
// Azure Pipelines variable names take no hyphens (slot-url -> slotUrl).
func OutputName(k string) string {
	parts := strings.Split(k, "-")
	for i := 1; i < len(parts); i++ {
		if r := []rune(parts[i]); len(r) > 0 {
			r[0] = unicode.ToUpper(r[0])
			parts[i] = string(r)
		}
	}
	return strings.Join(parts, "")
}

func uploadSummary(log agentLog, getenv func(string) string, md string) error {
	dir := getenv("AGENT_TEMPDIRECTORY")
	if dir == "" {
		dir = os.TempDir()
	}
	name := "djdeploy-summary"
	if id := getenv("SYSTEM_JOBID"); id != "" {
		name += "-" + id
	}
	path, err := filepath.Abs(filepath.Join(dir, name+".md"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	log.line(Command("task.uploadsummary", nil, path))
	return nil
}

func runURL(getenv func(string) string) string {
	c, p, id := getenv("SYSTEM_COLLECTIONURI"), getenv("SYSTEM_TEAMPROJECT"), getenv("BUILD_BUILDID")
	if c == "" || p == "" || id == "" {
		return ""
	}
	return strings.TrimSuffix(c, "/") + "/" + p + "/_build/results?buildId=" + id
}

func fail(log agentLog, err error) int {
	log.line(Command("task.logissue", map[string]string{"type": "error"}, ci.FailureMessage(err)))
	return problem.ExitCode(err)
}
