package appservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// StatusSet is a set of accepted HTTP statuses.
type StatusSet []struct{ Lo, Hi int }

// DefaultStatuses accepts 200-399: a Django site answering its health path
// with a redirect (to add a slash, or to https) is up. A redirect to a
// sign-in page is never accepted (see authRedirect).
var DefaultStatuses = StatusSet{{200, 399}}

// ParseStatuses parses codes and ranges: "200", "200-299", "200,302".
func ParseStatuses(items []string) (StatusSet, error) {
	var out StatusSet
	for _, it := range items {
		for _, f := range strings.FieldsFunc(it, func(r rune) bool { return r == ',' || r == ' ' }) {
			lo, hi, isRange := strings.Cut(f, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
				return nil, problem.Usagef("give codes or ranges such as 200-399 or 200,204", "health-statuses: %q is not an HTTP status or range", f)
			}
			out = append(out, struct{ Lo, Hi int }{a, b})
		}
	}
	if len(out) == 0 {
		return DefaultStatuses, nil
	}
	return out, nil
}

// Has reports whether code is accepted.
func (s StatusSet) Has(code int) bool {
	for _, r := range s {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// HealthCheck is how a host is probed.
type HealthCheck struct {
	Path          string        // "" : the slot's health path (see HealthPath)
	Statuses      StatusSet     // nil: DefaultStatuses
	Timeout       time.Duration // bounds the whole probe (0: 5m)
	ExpectRelease string        // if set, the body or X-Release-Id must contain it
	// MaxServerErrors ends the probe early, failed, after that many server
	// errors (5xx) or refused connections in a row (0: only Timeout ends
	// it). After a swap a production that answers errors is swapped back
	// in seconds instead of serving them for the whole verify timeout;
	// Timeout still bounds a slow start that answers nothing yet.
	MaxServerErrors int
}

// ProbeResult is the outcome of a warm-up or verification.
type ProbeResult struct {
	URL      string  `json:"url"`
	Status   int     `json:"status"`
	Attempts int     `json:"attempts"`
	Seconds  float64 `json:"seconds"`
	// ServerErrors is the run of server errors (5xx or refused
	// connections) that ended a probe early (see MaxServerErrors).
	ServerErrors int `json:"server_errors,omitempty"`
}

// HealthPath returns the path to probe on t: override, else the site's
// health check path, else WEBSITE_SWAP_WARMUP_PING_PATH, else "/".
func (c *Client) HealthPath(ctx context.Context, t Target, override string) (string, error) {
	if override != "" {
		return normPath(override), nil
	}
	cfg, err := c.getSiteConfig(ctx, t)
	if err != nil {
		return "", err
	}
	if p := deref(cfg.HealthCheckPath); p != "" {
		return normPath(p), nil
	}
	settings, err := c.listAppSettings(ctx, t)
	if err != nil {
		return "", err
	}
	if p := settings["WEBSITE_SWAP_WARMUP_PING_PATH"]; p != "" {
		return normPath(p), nil
	}
	return "/", nil
}

func normPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// WarmUp requests the slot's health path until it answers with an accepted
// status, within hc.Timeout.
func (c *Client) WarmUp(ctx context.Context, t Target, hc HealthCheck) (*ProbeResult, error) {
	return c.probe(ctx, t, hc, "warm-up")
}

// Verify probes production (or the swap's target slot) after a swap: the
// health path answers with an accepted status and, with ExpectRelease, the
// release id, within hc.Timeout.
func (c *Client) Verify(ctx context.Context, t Target, hc HealthCheck) (*ProbeResult, error) {
	return c.probe(ctx, t, hc, "verification")
}

type probeFailure struct {
	status  int
	body    string
	err     error
	hint    string
	release bool // answered healthy but without the expected release
}

func (c *Client) probe(ctx context.Context, t Target, hc HealthCheck, what string) (*ProbeResult, error) {
	start := time.Now()
	if hc.Timeout <= 0 {
		hc.Timeout = 5 * time.Minute
	}
	if hc.Statuses == nil {
		hc.Statuses = DefaultStatuses
	}
	site, err := c.GetSite(ctx, t)
	if err != nil {
		return nil, err
	}
	path, err := c.HealthPath(ctx, t, hc.Path)
	if err != nil {
		return nil, err
	}
	base, err := hostURL("default", site.DefaultHostName)
	if err != nil {
		return nil, err
	}
	u := base + path
	res := &ProbeResult{URL: u}
	hcl := *c.http
	// See redirects rather than follow them: a redirect to a sign-in page
	// means authentication stands in front of the app.
	hcl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	tctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	c.log.Infof("%s: requesting %s (up to %s)", what, u, hc.Timeout)
	wait := c.PollInterval
	var last probeFailure
	run := 0 // server errors in a row
	for {
		res.Attempts++
		f, ok := c.probeOnce(tctx, &hcl, u, hc)
		res.Status = f.status
		if ok {
			res.Seconds = time.Since(start).Seconds()
			c.log.Infof("%s: %s answered %d after %d attempt(s)", what, u, f.status, res.Attempts)
			return res, nil
		}
		if f.serverError() {
			run++
		} else {
			run = 0
		}
		if hc.MaxServerErrors > 0 && run >= hc.MaxServerErrors {
			res.Seconds = time.Since(start).Seconds()
			res.ServerErrors = run
			msg := fmt.Sprintf("%s of %s failed: %s answered %d server errors in a row (last: %s)", what, t, u, run, f.short())
			if f.body != "" {
				msg += "; body: " + f.body
			}
			return res, problem.Failf("check the app's log (az webapp log tail) for the error; swap-back-after sets how many errors in a row end the wait", "%s", msg)
		}
		// Keep the last real answer rather than the timeout that ended the
		// final attempt.
		if !(tctx.Err() != nil && f.status == 0 && (last.status != 0 || last.err != nil)) {
			last = f
		}
		if res.Attempts == 1 || res.Attempts%5 == 0 {
			c.log.Infof("%s: %s not ready yet (%s); retrying", what, u, f.short())
		}
		if err := sleep(tctx, wait); err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			break
		}
		wait = c.backoff(wait)
	}
	res.Seconds = time.Since(start).Seconds()
	msg := fmt.Sprintf("%s of %s failed: %s did not answer healthy within %s (%d attempts; last: %s)", what, t, u, hc.Timeout, res.Attempts, last.short())
	if last.body != "" {
		msg += "; body: " + last.body
	}
	fix := last.hint
	if fix == "" {
		fix = "check the app's log (az webapp log tail), its startup command and app settings; raise the timeout if it starts slowly"
		if what == "warm-up" {
			fix = "check the slot's log (az webapp log tail --slot ...), its startup command and app settings; raise warmup-timeout if it starts slowly"
		}
	}
	return res, problem.Failf(fix, "%s", msg)
}

// serverError: the app failed the request (5xx), or nothing listens
// (connection refused), as opposed to an app still starting or answering
// something else.
func (f probeFailure) serverError() bool {
	if f.status >= 500 && f.status <= 599 {
		return true
	}
	return f.err != nil && strings.Contains(f.err.Error(), "connection refused")
}

func (f probeFailure) short() string {
	switch {
	case f.err != nil:
		return f.err.Error()
	case f.release:
		return fmt.Sprintf("HTTP %d without the expected release id", f.status)
	case f.status != 0:
		return fmt.Sprintf("HTTP %d", f.status)
	}
	return "no answer"
}

// probeOnce makes one request; ok when healthy.
func (c *Client) probeOnce(ctx context.Context, hcl *http.Client, u string, hc HealthCheck) (probeFailure, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return probeFailure{err: err}, false
	}
	req.Header.Set("User-Agent", "djdeploy-warmup")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := hcl.Do(req)
	if err != nil {
		return probeFailure{err: trimURLError(err), hint: networkHint(err)}, false
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	f := probeFailure{status: resp.StatusCode, body: excerpt(raw, 300)}
	if authRedirect(resp) {
		f.hint = "authentication stands in front of the health path (a redirect to sign in): exclude the path from App Service authentication, or allow unauthenticated requests to it"
		return f, false
	}
	if resp.StatusCode == http.StatusUnauthorized {
		f.hint = "the health path answers 401: App Service authentication (or the app) requires sign-in; exclude the path from authentication"
		if hc.Statuses.Has(401) {
			return f, true
		}
		return f, false
	}
	if resp.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(string(raw)), "ip") {
		f.hint = "the runner's address is refused (access restrictions); allow the runner or probe from inside the network"
	}
	if !hc.Statuses.Has(resp.StatusCode) {
		return f, false
	}
	if hc.ExpectRelease != "" && !strings.Contains(string(raw), hc.ExpectRelease) && !strings.Contains(resp.Header.Get("X-Release-Id"), hc.ExpectRelease) {
		f.release = true
		f.hint = "production does not report release " + hc.ExpectRelease + ": the app should include its release id (DJDEPLOY_RELEASE_ID) in the health response body or an X-Release-Id header"
		return f, false
	}
	return f, true
}

// authRedirect reports a redirect to a sign-in page.
func authRedirect(resp *http.Response) bool {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return false
	}
	loc := strings.ToLower(resp.Header.Get("Location"))
	return strings.Contains(loc, "login.microsoftonline.com") || strings.Contains(loc, "login.microsoft.com") ||
		strings.Contains(loc, "/.auth/login") || strings.Contains(loc, "login.windows.net")
}

func networkHint(err error) string {
	var ne net.Error
	var oe *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "the slot's host name does not resolve from the runner: with a private endpoint, run the release from inside the network"
	case errors.As(err, &ne) && ne.Timeout(), errors.As(err, &oe):
		return "the runner cannot reach the slot (connection refused or timed out): check the slot's access restrictions or private endpoint, or run from a runner inside the network"
	}
	return ""
}

func trimURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func excerpt(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// SwapSpec names a swap: the source slot and its target ("production" or
// another slot).
type SwapSpec struct {
	Target                       // the source slot
	With           string        // target slot ("" : production)
	Timeout        time.Duration // bounds the long-running operation (0: 30m)
	NoPreserveVnet bool
}

func (s SwapSpec) with() string {
	if s.With == "" {
		return Production
	}
	return s.With
}

func (s SwapSpec) validate() error {
	if err := s.Target.validate(); err != nil {
		return err
	}
	if s.Target.IsProduction() {
		return problem.Usagef("give the deployment slot to swap with --slot", "swap needs a deployment slot other than production")
	}
	if strings.EqualFold(s.Slot, s.with()) {
		return problem.Usagef("give a different --target", "cannot swap slot %s with itself", s.Slot)
	}
	return nil
}

func (s SwapSpec) entity() armappservice.CsmSlotEntity {
	return armappservice.CsmSlotEntity{TargetSlot: to.Ptr(s.with()), PreserveVnet: to.Ptr(!s.NoPreserveVnet)}
}

// Swap swaps the slot into its target as a long-running operation, waiting
// for it within the timeout (Retry-After is honoured, 429 retried).
func (c *Client) Swap(ctx context.Context, s SwapSpec) error {
	return c.swap(ctx, s, "swapping")
}

// SwapBack undoes a completed Swap by swapping the same pair again: the
// slot holds the previous production release after a swap.
func (c *Client) SwapBack(ctx context.Context, s SwapSpec) error {
	return c.swap(ctx, s, "swapping back")
}

func (c *Client) swap(ctx context.Context, s SwapSpec, doing string) error {
	if err := s.validate(); err != nil {
		return err
	}
	if s.Timeout <= 0 {
		s.Timeout = 30 * time.Minute
	}
	tctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	start := time.Now()
	c.log.Infof("%s %s with %s (up to %s)", doing, s.Target, s.with(), s.Timeout)
	poller, err := c.webApps.BeginSwapSlot(tctx, s.ResourceGroup, s.App, s.Slot, s.entity(), nil)
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return swapTimeout(s, doing)
		}
		return armError(err, doing+" "+s.Target.String()+" with "+s.with())
	}
	stop := progress.Long(c.log, doing+" "+s.Target.String())
	_, err = poller.PollUntilDone(tctx, &runtime.PollUntilDoneOptions{Frequency: c.lroFrequency()})
	stop()
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return swapTimeout(s, doing)
		}
		return armError(err, doing+" "+s.Target.String()+" with "+s.with())
	}
	c.log.Infof("%s %s with %s done in %s", doing, s.Target, s.with(), time.Since(start).Round(time.Second))
	return nil
}

func swapTimeout(s SwapSpec, doing string) error {
	return problem.Failf("raise swap-timeout; Azure may still complete the swap, so check the app's Deployment slots blade before re-running",
		"%s %s with %s did not finish within %s", doing, s.Target, s.with(), s.Timeout)
}

// lroFrequency is the poll frequency for ARM long-running operations;
// Retry-After from Azure takes precedence.
func (c *Client) lroFrequency() time.Duration {
	if c.PollInterval < time.Second {
		return c.PollInterval
	}
	return c.PollInterval * 5 / 2
}

// PreviewSwap is phase one of a swap with preview: the target's
// slot-specific settings are applied to the slot, which restarts with them.
func (c *Client) PreviewSwap(ctx context.Context, s SwapSpec) error {
	if err := s.validate(); err != nil {
		return err
	}
	c.log.Infof("applying %s's slot settings to %s (swap with preview)", s.with(), s.Target)
	_, err := c.webApps.ApplySlotConfigurationSlot(ctx, s.ResourceGroup, s.App, s.Slot, s.entity(), nil)
	return armError(err, "starting the swap with preview of "+s.Target.String())
}

// CancelSwap cancels a swap with preview: the slot's own settings are
// restored.
func (c *Client) CancelSwap(ctx context.Context, s SwapSpec) error {
	if err := s.validate(); err != nil {
		return err
	}
	c.log.Infof("cancelling the swap with preview of %s", s.Target)
	_, err := c.webApps.ResetSlotConfigurationSlot(ctx, s.ResourceGroup, s.App, s.Slot, nil)
	return armError(err, "cancelling the swap with preview of "+s.Target.String())
}

// SwapPlan is the whole swap command: warm up, swap, verify, swap back.
type SwapPlan struct {
	Swap       SwapSpec
	Action     string // swap (default), preview, complete, cancel
	WarmUp     HealthCheck
	Verify     HealthCheck
	NoRollback bool
	// SkipWarmUp swaps without warming up first, for callers that already
	// ran WarmUp as their own step.
	SkipWarmUp bool
}

// SwapReport is what happened.
type SwapReport struct {
	Action     string       `json:"action"`
	Slot       string       `json:"slot"`
	Target     string       `json:"target"`
	WarmUp     *ProbeResult `json:"warmup,omitempty"`
	Swapped    bool         `json:"swapped"`
	Verify     *ProbeResult `json:"verify,omitempty"`
	Verified   bool         `json:"verified"`
	RolledBack bool         `json:"rolled_back"`
	// FailureSeconds is how long production served the failed release:
	// from the swap to the end of the swap back.
	FailureSeconds float64 `json:"failure_seconds,omitempty"`
	Previewed      bool    `json:"previewed,omitempty"`
	Cancelled      bool    `json:"cancelled,omitempty"`
}

// RunSwap runs an action of the swap command. For swap and complete: the
// slot is warmed up (no swap happens if it never answers healthy), swapped,
// and the target verified; if verification fails the swap is undone unless
// NoRollback. preview applies the target's settings and warms the slot up;
// cancel undoes a preview.
func (c *Client) RunSwap(ctx context.Context, p SwapPlan) (*SwapReport, error) {
	if p.Action == "" {
		p.Action = "swap"
	}
	rep := &SwapReport{Action: p.Action, Slot: p.Swap.Slot, Target: p.Swap.with()}
	if err := p.Swap.validate(); err != nil {
		return rep, err
	}
	targetT := Target{ResourceGroup: p.Swap.ResourceGroup, App: p.Swap.App, Slot: p.Swap.with()}
	switch p.Action {
	case "cancel":
		if err := c.CancelSwap(ctx, p.Swap); err != nil {
			return rep, err
		}
		rep.Cancelled = true
		return rep, nil
	case "preview":
		if err := c.PreviewSwap(ctx, p.Swap); err != nil {
			return rep, err
		}
		rep.Previewed = true
		w, err := c.WarmUp(ctx, p.Swap.Target, p.WarmUp)
		rep.WarmUp = w
		if err != nil {
			return rep, err
		}
		return rep, nil
	case "swap", "complete":
	default:
		return rep, problem.Usagef("use swap, preview, complete or cancel", "unknown swap action %q", p.Action)
	}
	if !p.SkipWarmUp {
		if err := c.runWarmUp(ctx, p, rep, targetT); err != nil {
			return rep, err
		}
	}
	if err := c.Swap(ctx, p.Swap); err != nil {
		return rep, err
	}
	return c.verifyOrSwapBack(ctx, p, rep, targetT)
}

func (c *Client) runWarmUp(ctx context.Context, p SwapPlan, rep *SwapReport, targetT Target) error {
	w, err := c.WarmUp(ctx, p.Swap.Target, p.WarmUp)
	rep.WarmUp = w
	if err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) {
			pe.What += "; nothing was swapped, " + targetT.String() + " is unchanged"
		}
		return err
	}
	return nil
}

func (c *Client) verifyOrSwapBack(ctx context.Context, p SwapPlan, rep *SwapReport, targetT Target) (*SwapReport, error) {
	rep.Swapped = true
	swapped := time.Now()
	v, verr := c.Verify(ctx, targetT, p.Verify)
	rep.Verify = v
	if verr == nil {
		rep.Verified = true
		return rep, nil
	}
	if errors.Is(verr, context.Canceled) {
		return rep, verr
	}
	if p.NoRollback {
		return rep, problem.Wrap(verr, "swap back by hand (djdeploy swap --slot "+p.Swap.Slot+") if production is broken", "%s failed verification after the swap; not swapped back (--no-rollback)", targetT)
	}
	c.log.Warnf("%s failed verification after the swap; swapping back", targetT)
	// Swap back even when ctx is cancelled: production must not stay broken.
	bctx := context.WithoutCancel(ctx)
	if berr := c.SwapBack(bctx, p.Swap); berr != nil {
		return rep, problem.Wrap(errors.Join(verr, berr), "swap back by hand now: djdeploy swap --slot "+p.Swap.Slot,
			"%s failed verification after the swap AND swapping back failed", targetT)
	}
	rep.RolledBack = true
	rep.FailureSeconds = time.Since(swapped).Seconds()
	var pe *problem.Error
	fix := "fix the release and run again"
	if errors.As(verr, &pe) && pe.Fix != "" {
		fix = pe.Fix
	}
	return rep, problem.Wrap(verr, fix, "%s failed verification after the swap; swapped back after %s, it serves the previous release again", targetT, time.Duration(rep.FailureSeconds*float64(time.Second)).Round(100*time.Millisecond))
}
