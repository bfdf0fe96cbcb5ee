package appservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// deploymentStatusAPIVersion is the ARM API version of deploymentStatus
// (the one armappservice/v4 uses).
const deploymentStatusAPIVersion = "2024-04-01"

// logTailLines is how much of the deployment log a failure shows.
const logTailLines = 40

// DeployOptions says what to deploy where.
type DeployOptions struct {
	Target
	Package string        // path of the zip
	Timeout time.Duration // bounds the upload, any wait for a running deployment, and the deployment itself (0: 20m)
}

// DeployResult describes a finished deployment.
type DeployResult struct {
	Target       string        `json:"target"`
	DeploymentID string        `json:"deployment_id,omitempty"`
	Status       string        `json:"status"`
	SCMHost      string        `json:"scm_host"`
	Bytes        int64         `json:"bytes"`
	Conflicts    int           `json:"waited_for_other_deployments"`
	Duration     time.Duration `json:"-"`
	Seconds      float64       `json:"seconds"`
	Warnings     []string      `json:"warnings,omitempty"`
}

// DeployError is a failed deployment: what Azure reported, with the tail
// of the deployment log. It is also a *problem.Error through Unwrap.
type DeployError struct {
	DeploymentID string
	Status       string
	Errors       []string // deploymentStatus errors[].message
	InstanceLogs []string // failedInstancesLogs
	LogTail      []string // last lines of the Kudu deployment log
	problem      *problem.Error
}

func (e *DeployError) Error() string { return e.problem.Error() }
func (e *DeployError) Unwrap() error { return e.problem }

// kuduPipeline is an ARM-style pipeline (bearer token for the ARM audience,
// retries, the configured transport) for the app's SCM host.
func (c *Client) kuduPipeline(scmURL string) (runtime.Pipeline, error) {
	o := *c.opts
	// Plain HTTP is only ever used for loopback hosts (hostURL); the bearer
	// policy must be told it may send the token there.
	o.InsecureAllowCredentialWithHTTP = strings.HasPrefix(scmURL, "http://")
	ac, err := arm.NewClient(moduleName+"/kudu", moduleVersion, c.cred, &o)
	if err != nil {
		return runtime.Pipeline{}, fmt.Errorf("creating the Kudu client: %w", err)
	}
	return ac.Pipeline(), nil
}

// Deploy uploads the package with OneDeploy (async, clean, restart) and
// waits for the deployment: through ARM's deploymentStatus when Kudu gives
// a deployment id, else through Kudu's status URL. A deployment already in
// progress (409) is waited out within the timeout.
func (c *Client) Deploy(ctx context.Context, o DeployOptions) (*DeployResult, error) {
	start := time.Now()
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Minute
	}
	f, err := os.Open(o.Package)
	if err != nil {
		return nil, problem.Usagef("give the zip written by 'djdeploy build' with --package", "cannot open package: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		return nil, problem.Usagef("give the zip file, not a folder", "package %s is not a file", o.Package)
	}
	site, err := c.GetSite(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	scm, err := hostURL("SCM (Kudu)", site.SCMHost)
	if err != nil {
		return nil, err
	}
	pl, err := c.kuduPipeline(scm)
	if err != nil {
		return nil, err
	}
	res := &DeployResult{Target: o.Target.String(), SCMHost: site.SCMHost, Bytes: st.Size()}

	tctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	timedOut := func(doing, last string) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := fmt.Sprintf("deploy to %s did not finish within %s while %s", o.Target, o.Timeout, doing)
		if last != "" {
			msg += " (last status: " + last + ")"
		}
		return problem.Failf("raise deploy-timeout, or look at the deployment in the portal's Deployment Center; App Service may still finish it", "%s", msg)
	}

	c.log.Infof("deploying %s (%s) to %s", filepath.Base(o.Package), progress.HumanBytes(st.Size()), o.Target)
	var loc, id string
	wait := c.PollInterval
	for {
		resp, err := c.upload(tctx, pl, scm, f, st.Size())
		if err != nil {
			if tctx.Err() != nil {
				if res.Conflicts > 0 {
					return nil, timedOut("waiting for another deployment to finish (HTTP 409)", "409 Conflict")
				}
				return nil, timedOut("uploading", "")
			}
			return nil, problem.Wrap(err, "check the network path to "+site.SCMHost, "uploading the package to %s", o.Target)
		}
		if resp.StatusCode == http.StatusConflict {
			body := readExcerpt(resp, 300)
			res.Conflicts++
			c.log.Infof("another deployment is in progress on %s (HTTP 409: %s); waiting %s and retrying", o.Target, body, wait.Round(time.Millisecond))
			if err := sleep(tctx, wait); err != nil {
				return nil, timedOut("waiting for another deployment to finish (HTTP 409)", "409 Conflict")
			}
			wait = c.backoff(wait)
			continue
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
			return nil, uploadError(o.Target, resp)
		}
		id = resp.Header.Get("SCM-DEPLOYMENT-ID")
		loc = resp.Header.Get("Location")
		status := resp.StatusCode
		resp.Body.Close()
		if status == http.StatusOK && loc == "" && id == "" {
			// A synchronous answer: the deployment is done.
			res.Status = "Success"
			res.Duration = time.Since(start)
			res.Seconds = res.Duration.Seconds()
			return res, nil
		}
		break
	}
	res.DeploymentID = id
	c.log.Infof("upload accepted; deployment %s is running", orUnknown(id))

	// Oryx's build and the app's start can take minutes: a heartbeat (a
	// spinner on a terminal) says the wait goes on.
	stopBeat := progress.Long(c.log, "deployment "+orUnknown(id)+" on "+o.Target.String())
	var perr error
	if id != "" {
		perr = c.pollARM(tctx, o.Target, id, res)
		if errors.Is(perr, errStatusUnavailable) {
			c.log.Infof("deployment status is not available from Azure Resource Manager; following Kudu's status instead")
			perr = c.pollKudu(tctx, pl, scm, loc, id, res)
		}
	} else {
		perr = c.pollKudu(tctx, pl, scm, loc, id, res)
	}
	stopBeat()
	if perr != nil {
		var de *DeployError
		if errors.As(perr, &de) {
			de.LogTail = c.logTail(ctx, pl, scm, de.DeploymentID)
			c.hideSettings(ctx, o.Target, de)
			c.printFailure(de)
			return nil, de
		}
		if tctx.Err() != nil && ctx.Err() == nil {
			return nil, timedOut("waiting for the deployment", res.Status)
		}
		return nil, perr
	}
	res.Duration = time.Since(start)
	res.Seconds = res.Duration.Seconds()
	c.log.Infof("deployment %s succeeded in %s", orUnknown(res.DeploymentID), res.Duration.Round(time.Second))
	return res, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(no id)"
	}
	return s
}

func (c *Client) upload(ctx context.Context, pl runtime.Pipeline, scm string, f *os.File, size int64) (*http.Response, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	u := scm + "/api/publish?type=zip&async=true&clean=true&restart=true&deployer=djdeploy"
	req, err := runtime.NewRequest(ctx, http.MethodPost, u)
	if err != nil {
		return nil, err
	}
	body := &countingReader{f: f, size: size, log: c.log}
	// A seekable body lets the retry policy resend it from the start.
	if err := req.SetBody(streaming.NopCloser(body), "application/zip"); err != nil {
		return nil, err
	}
	req.Raw().Header.Set("Accept", "application/json")
	return pl.Do(req)
}

// countingReader reports upload progress for big packages.
type countingReader struct {
	f    *os.File
	size int64
	n    atomic.Int64
	log  interface{ Count(string, int64, int64) }
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	done := r.n.Add(int64(n))
	if r.size >= 8<<20 && n > 0 {
		r.log.Count("uploaded bytes", done, r.size)
	}
	return n, err
}

func (r *countingReader) Seek(off int64, whence int) (int64, error) {
	pos, err := r.f.Seek(off, whence)
	if err == nil {
		r.n.Store(pos)
	}
	return pos, err
}

func uploadError(t Target, resp *http.Response) error {
	body := readExcerpt(resp, 500)
	fix := ""
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		fix = "the SCM site refused the Entra ID token; check the credential and that arm-audience is the ARM audience"
	case http.StatusForbidden:
		fix = "give the principal Microsoft.Web/sites/publish/Action (e.g. Website Contributor) on the app, and check the SCM site's access restrictions"
	case http.StatusNotFound:
		fix = "the SCM site has no OneDeploy endpoint; check that this is a Linux App Service app"
	case http.StatusRequestEntityTooLarge:
		fix = "the package is larger than App Service accepts (2 GB); exclude more files from the build"
	default:
		fix = "look at the app's Deployment Center log in the portal"
	}
	return problem.Failf(fix, "uploading the package to %s failed: HTTP %d %s", t, resp.StatusCode, body)
}

// readExcerpt reads and closes a body, returning its first n bytes on one line.
func readExcerpt(resp *http.Response, n int) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(n)+1))
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

var errStatusUnavailable = errors.New("deployment status unavailable")

// armDeploymentStatus is ARM's CsmDeploymentStatus.
type armDeploymentStatus struct {
	Properties struct {
		Status                      string   `json:"status"`
		NumberOfInstancesInProgress int      `json:"numberOfInstancesInProgress"`
		NumberOfInstancesSuccessful int      `json:"numberOfInstancesSuccessful"`
		NumberOfInstancesFailed     int      `json:"numberOfInstancesFailed"`
		FailedInstancesLogs         []string `json:"failedInstancesLogs"`
		Errors                      []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"properties"`
}

// pollARM follows ARM's deploymentStatus for the deployment id. It uses raw
// GETs through the ARM pipeline (not the SDK's Begin* poller) because it
// must read the status of every answer, 200 and 202 alike, and report the
// transitions.
func (c *Client) pollARM(ctx context.Context, t Target, id string, res *DeployResult) error {
	path := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Web/sites/%s",
		url.PathEscape(c.subscription), url.PathEscape(t.ResourceGroup), url.PathEscape(t.App))
	if !t.IsProduction() {
		path += "/slots/" + url.PathEscape(t.Slot)
	}
	u := runtime.JoinPaths(c.arm.Endpoint(), path+"/deploymentStatus/"+url.PathEscape(id)) + "?api-version=" + deploymentStatusAPIVersion
	wait := c.PollInterval
	notFound, idle := 0, 0
	last := ""
	for {
		req, err := runtime.NewRequest(ctx, http.MethodGet, u)
		if err != nil {
			return err
		}
		resp, err := c.arm.Pipeline().Do(req)
		if err != nil {
			return armError(err, "reading the deployment status")
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			resp.Body.Close()
			// The id is not known to ARM at first; a few 404s are normal,
			// many mean the API does not serve this app.
			notFound++
			if notFound >= 4 {
				return errStatusUnavailable
			}
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted:
			notFound = 0
			var ds armDeploymentStatus
			body, err := runtime.Payload(resp)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("reading the deployment status: %w", err)
			}
			if err := json.Unmarshal(body, &ds); err != nil || ds.Properties.Status == "" {
				return errStatusUnavailable
			}
			p := ds.Properties
			res.Status = p.Status
			if p.Status != last {
				c.log.Infof("deployment %s: %s (instances: %d in progress, %d successful, %d failed)", id, p.Status,
					p.NumberOfInstancesInProgress, p.NumberOfInstancesSuccessful, p.NumberOfInstancesFailed)
				last = p.Status
				idle = 0
			}
			switch p.Status {
			case "RuntimeSuccessful":
				return nil
			case "BuildFailed", "BuildAborted", "RuntimeFailed", "TimedOut":
				de := &DeployError{DeploymentID: id, Status: p.Status, InstanceLogs: p.FailedInstancesLogs}
				for _, e := range p.Errors {
					if e.Message != "" {
						de.Errors = append(de.Errors, e.Message)
					}
				}
				de.problem = deployProblem(t, id, p.Status)
				return de
			case "RuntimeStarting":
				// azd's rule: no instance starting for three polls means the
				// app is stopped (or scaled to zero); the files are deployed.
				if p.NumberOfInstancesInProgress == 0 && p.NumberOfInstancesSuccessful == 0 && p.NumberOfInstancesFailed == 0 {
					idle++
					if idle >= 3 {
						w := "no instance reported starting; the app may be stopped"
						c.log.Warnf("deployment %s: %s", id, w)
						res.Warnings = append(res.Warnings, w)
						return nil
					}
				}
			}
		default:
			return armError(runtimeError(resp), "reading the deployment status")
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = c.backoff(wait)
	}
}

func runtimeError(resp *http.Response) error { return runtime.NewResponseError(resp) }

func deployProblem(t Target, id, status string) *problem.Error {
	fix := "read the deployment log above"
	switch {
	case strings.HasPrefix(status, "Build"):
		fix = "the remote (Oryx) build failed: read the build log above; fix requirements.txt, or build locally with dependency-mode local"
	case status == "RuntimeFailed":
		fix = "the app did not start: check the startup command, the app settings and the app's log (az webapp log tail)"
	case status == "TimedOut":
		fix = "App Service gave up waiting for the app to start; check the startup command and the app's log"
	}
	return problem.Failf(fix, "deployment %s to %s failed: %s", orUnknown(id), t, status)
}

// kuduResult is Kudu's DeployResult.
type kuduResult struct {
	ID         string `json:"id"`
	Status     int    `json:"status"`
	StatusText string `json:"status_text"`
	Complete   bool   `json:"complete"`
	LogURL     string `json:"log_url"`
	Progress   string `json:"progress"`
}

var kuduStatusNames = map[int]string{0: "Pending", 1: "Building", 2: "Deploying", 3: "Failed", 4: "Success", 5: "Complete"}

// pollKudu follows Kudu's status URL (the 202's Location, else
// /api/deployments/{id|latest}).
func (c *Client) pollKudu(ctx context.Context, pl runtime.Pipeline, scm, loc, id string, res *DeployResult) error {
	u := loc
	if u == "" {
		which := id
		if which == "" {
			which = "latest"
		}
		u = scm + "/api/deployments/" + url.PathEscape(which)
	} else if ref, err := url.Parse(loc); err == nil && !ref.IsAbs() {
		base, _ := url.Parse(scm)
		u = base.ResolveReference(ref).String()
	}
	wait := c.PollInterval
	last := ""
	for {
		req, err := runtime.NewRequest(ctx, http.MethodGet, u)
		if err != nil {
			return err
		}
		req.Raw().Header.Set("Accept", "application/json")
		resp, err := pl.Do(req)
		if err != nil {
			return problem.Wrap(err, "check the network path to the SCM site", "reading the deployment status from Kudu")
		}
		switch resp.StatusCode {
		case http.StatusOK, http.StatusAccepted:
			body, _ := runtime.Payload(resp)
			resp.Body.Close()
			var kr kuduResult
			if len(body) > 0 && json.Unmarshal(body, &kr) == nil {
				if kr.ID != "" {
					res.DeploymentID = kr.ID
				}
				name := kuduStatusNames[kr.Status]
				res.Status = name
				if name != last {
					c.log.Infof("deployment %s: %s %s", orUnknown(res.DeploymentID), name, kr.Progress)
					last = name
				}
				if kr.Status == 3 {
					de := &DeployError{DeploymentID: res.DeploymentID, Status: "Failed"}
					if kr.StatusText != "" {
						de.Errors = []string{kr.StatusText}
					}
					de.problem = deployProblem(Target{}, res.DeploymentID, "Failed")
					de.problem.What = fmt.Sprintf("deployment %s failed: %s", orUnknown(res.DeploymentID), strings.TrimSpace("Kudu status Failed "+kr.StatusText))
					de.problem.Fix = "read the deployment log above"
					return de
				}
				if kr.Complete && (kr.Status == 4 || kr.Status == 5) {
					res.Status = "Success"
					return nil
				}
			} else if len(bytes.TrimSpace(body)) > 0 {
				// Not a DeployResult (a proxy's page, a mistyped field): it
				// may be saying Failed or Building, so it is not a success.
				return problem.Failf("look at the app's Deployment Center log in the portal",
					"reading the deployment status from Kudu: HTTP %d with a body that is not a deployment status: %s", resp.StatusCode, excerpt(bytes.ToValidUTF8(body, []byte("?")), 300))
			} else if resp.StatusCode == http.StatusOK {
				// An empty 200 is the end of a synchronous deployment.
				res.Status = "Success"
				return nil
			}
		case http.StatusNotFound:
			resp.Body.Close()
			// the deployment record may not exist yet
		default:
			return problem.Failf("look at the app's Deployment Center log in the portal", "reading the deployment status from Kudu: HTTP %d %s", resp.StatusCode, readExcerpt(resp, 300))
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = c.backoff(wait)
	}
}

// kuduLogEntry is one entry of /api/deployments/{id}/log.
type kuduLogEntry struct {
	LogTime    string `json:"log_time"`
	ID         string `json:"id"`
	Message    string `json:"message"`
	Type       int    `json:"type"`
	DetailsURL string `json:"details_url"`
}

// logTail returns the last lines of the deployment log, nested details
// included. It is best effort: a failure to read the log never hides the
// deployment's own failure.
func (c *Client) logTail(ctx context.Context, pl runtime.Pipeline, scm, id string) []string {
	if id == "" {
		id = "latest"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	get := func(u string) []kuduLogEntry {
		if ref, err := url.Parse(u); err == nil && !ref.IsAbs() {
			base, _ := url.Parse(scm)
			u = base.ResolveReference(ref).String()
		}
		req, err := runtime.NewRequest(policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: 1}), http.MethodGet, u)
		if err != nil {
			return nil
		}
		resp, err := pl.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		var entries []kuduLogEntry
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if json.Unmarshal(body, &entries) != nil {
			return nil
		}
		return entries
	}
	var lines []string
	fetched := 0
	for _, e := range get(scm + "/api/deployments/" + url.PathEscape(id) + "/log") {
		lines = append(lines, splitLines(e.Message)...)
		if e.DetailsURL != "" && fetched < 20 {
			fetched++
			for _, d := range get(e.DetailsURL) {
				for _, l := range splitLines(d.Message) {
					lines = append(lines, "  "+l)
				}
			}
		}
	}
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return lines
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if l = strings.TrimRight(l, " \t"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// hideSettings replaces the slot's app-setting values in a failed
// deployment's logs with *** (and masks them in CI): an app that fails at
// start often prints its configuration, secrets included, and these lines
// are shown and kept in the report. Reading the settings is best effort.
func (c *Client) hideSettings(ctx context.Context, t Target, de *DeployError) {
	env, err := c.AppSettings(ctx, t)
	if err != nil {
		return
	}
	hide := redact.Maskable(env)
	progress.Mask(c.log, hide...)
	for _, l := range [][]string{de.Errors, de.InstanceLogs, de.LogTail} {
		for i := range l {
			l[i] = redact.Values(l[i], hide)
		}
	}
}

func (c *Client) printFailure(de *DeployError) {
	for _, e := range de.Errors {
		c.log.Infof("error reported by App Service: %s", e)
	}
	for _, l := range de.InstanceLogs {
		c.log.Infof("failed instance log: %s", l)
	}
	if len(de.LogTail) > 0 {
		c.log.Infof("deployment log (last %d lines):", len(de.LogTail))
		for _, l := range de.LogTail {
			c.log.Infof("  | %s", l)
		}
	}
}

// ActiveDeployment is the id of the deployment Kudu says t runs now (the
// one marked active in /api/deployments), "" when none is. A release
// establishes what a slot runs from this, not from an app setting that
// anyone's deploy leaves in place.
func (c *Client) ActiveDeployment(ctx context.Context, t Target) (string, error) {
	site, err := c.GetSite(ctx, t)
	if err != nil {
		return "", err
	}
	scm, err := hostURL("SCM (Kudu)", site.SCMHost)
	if err != nil {
		return "", err
	}
	pl, err := c.kuduPipeline(scm)
	if err != nil {
		return "", err
	}
	req, err := runtime.NewRequest(ctx, http.MethodGet, scm+"/api/deployments")
	if err != nil {
		return "", err
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := pl.Do(req)
	if err != nil {
		return "", problem.Wrap(err, "check the network path to the SCM site", "listing %s's deployments in Kudu", t)
	}
	body, err := runtime.Payload(resp)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("reading %s's deployments: %w", t, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", problem.Failf("look at the app's Deployment Center in the portal", "listing %s's deployments in Kudu: HTTP %d %s", t, resp.StatusCode, excerpt(body, 300))
	}
	var list []struct {
		ID     string `json:"id"`
		Active bool   `json:"active"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", problem.Failf("look at the app's Deployment Center in the portal", "listing %s's deployments in Kudu: not a deployment list: %s", t, excerpt(body, 300))
	}
	for _, d := range list {
		if d.Active {
			return d.ID, nil
		}
	}
	return "", nil
}
