package release

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/gates"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/report"
)

// Progressive delivery: the canary strategy (the swap step preceded by a
// gradual shift of production's new visitors to the slot, judged by
// traffic gates), the post-swap watch, and release annotations.

// Strategies.
const (
	StrategySwap   = "swap"
	StrategyCanary = "canary"
)

// Extra steps, present in a release's report only when configured.
const (
	StepCanary = "canary"
	StepWatch  = "watch"
)

// Progressive configures canary, watch and annotations (the zero value: a
// plain swap, no watch, no annotation).
type Progressive struct {
	Strategy string
	// Steps are the canary's shares of new visitors, in percent, strictly
	// increasing, each below 100; Interval is how long each is watched.
	Steps    []float64
	Interval time.Duration
	Gate     gates.Thresholds
	// Meter measures a target's traffic: the slot's during the canary,
	// production's during the watch. It says where its figures come from
	// (Application Insights, or djdeploy's own probes).
	Meter func(t appservice.Target) gates.Meter
	// Watch is how long production is watched after the swap (0: not);
	// a breach swaps back at once.
	Watch time.Duration
	// Annotate records a release event on the app's charts (nil: none).
	Annotate func(ctx context.Context, name string, props map[string]string) error
}

// Validate checks the canary's steps and interval before anything changes.
func (p Progressive) Validate() error {
	switch p.Strategy {
	case "", StrategySwap:
	case StrategyCanary:
		if len(p.Steps) == 0 {
			return problem.Usagef("give the shares to route, e.g. --canary-steps 5,25,50", "--strategy canary needs --canary-steps")
		}
		prev := 0.0
		for _, s := range p.Steps {
			if s <= prev || s >= 100 {
				return problem.Usagef("use increasing percentages above 0 and below 100, e.g. --canary-steps 5,25,50 (the swap completes the last step to 100)",
					"canary step %g: each step must be larger than the one before and below 100", s)
			}
			prev = s
		}
		if p.Interval <= 0 {
			return problem.Usagef("give how long each step is watched, e.g. --canary-interval 5m", "--canary-interval must be longer than zero")
		}
		if p.Meter == nil {
			return fmt.Errorf("canary without a traffic meter")
		}
	default:
		return problem.Usagef("use --strategy swap or --strategy canary", "unknown strategy %q", p.Strategy)
	}
	if p.Watch > 0 && p.Meter == nil {
		return fmt.Errorf("watch without a traffic meter")
	}
	return nil
}

func (r *runner) production() appservice.Target {
	return appservice.Target{ResourceGroup: r.opt.Target.ResourceGroup, App: r.opt.Target.App}
}

func gateRecord(step string, pct float64, v gates.Verdict) report.Gate {
	return report.Gate{Step: step, Percent: pct, Outcome: string(v.Outcome), Source: v.Measurement.Source,
		Requests: v.Measurement.Requests, Failed: v.Measurement.Failed, P95: v.Measurement.P95, Reason: v.Reason,
		From: v.Measurement.From, To: v.Measurement.To}
}

// canary applies production's slot settings to the slot (swap with preview,
// phase 1), warms it up again, then routes each step's share of production's
// new visitors to it and judges the slot's traffic over the interval. A gate
// that fails (or sees too little traffic) removes the rule, resets the slot's
// settings and fails the release: production was never swapped.
func (r *runner) canary(ctx context.Context) (string, error) {
	p := r.opt.Progressive
	t, prod := r.opt.Target, r.production()
	spec := appservice.SwapSpec{Target: t, Timeout: r.opt.SwapTimeout}
	if err := r.slotRunsThisRelease(ctx); err != nil {
		return "", err
	}
	if err := r.deps.App.PreviewSwap(ctx, spec); err != nil {
		return "", err
	}
	abort := func(cause error) error {
		// Undo with a context the caller's cancellation does not stop:
		// production must be left routing nobody to the slot.
		uctx := context.WithoutCancel(ctx)
		if err := r.deps.App.SetTraffic(uctx, prod, t.Slot, 0); err != nil {
			return fmt.Errorf("%w; removing the traffic rule also failed: %v (remove it: az webapp traffic-routing clear -g %s -n %s)", cause, err, prod.ResourceGroup, prod.App)
		}
		if err := r.deps.App.CancelSwap(uctx, spec); err != nil {
			r.rep.Warnf("resetting %s's settings after the aborted canary: %v", t, err)
		}
		r.annotate(uctx, "canary aborted", map[string]string{"Reason": firstLine(cause.Error())})
		if r.st != nil && r.st.ReleaseID != "" && r.st.CanaryPassed > 0 {
			// An aborted canary starts over: its shares passed before the
			// failure prove nothing about the next attempt.
			r.st.CanaryPassed = 0
			r.saveState(uctx)
		}
		return cause
	}
	hc := r.opt.WarmUp
	if r.opt.CheckRelease {
		hc.ExpectRelease = r.art.Manifest.ReleaseID
	}
	if _, err := r.deps.App.WarmUp(ctx, t, hc); err != nil {
		return "", abort(fmt.Errorf("warming up %s with production's settings: %w", t, err))
	}
	meter := p.Meter(t)
	var passed []string
	resumed := 0.0
	if r.st != nil {
		resumed = r.st.CanaryPassed
	}
	if resumed > 0 {
		r.rep.Infof("canary: resuming after %g%%, whose gate passed in an earlier run", resumed)
	}
	for _, pct := range p.Steps {
		if pct <= resumed {
			r.out.Gates = append(r.out.Gates, report.Gate{Step: StepCanary, Percent: pct, Outcome: string(gates.Pass), Reason: "passed in an earlier run"})
			passed = append(passed, fmt.Sprintf("%g%%", pct))
			continue
		}
		if err := r.deps.App.SetTraffic(ctx, prod, t.Slot, pct); err != nil {
			return "", abort(err)
		}
		r.rep.Infof("canary: %g%% of production's new visitors go to %s; judging its traffic for %s", pct, t.Slot, p.Interval)
		v, err := gates.Evaluate(ctx, meter, p.Interval, p.Gate)
		if err != nil {
			return "", abort(fmt.Errorf("measuring the canary at %g%%: %w", pct, err))
		}
		r.out.Gates = append(r.out.Gates, gateRecord(StepCanary, pct, v))
		r.rep.Infof("canary at %g%%: %s: %s", pct, v.Outcome, v.Reason)
		if v.Outcome != gates.Pass {
			fix := "fix the release (its errors are in the app's logs and Application Insights) and release again; production was not changed"
			if v.Outcome == gates.Insufficient {
				fix = "send more traffic, lengthen --canary-interval or lower --min-requests; production was not changed"
			}
			return "", abort(problem.Failf(fix, "canary at %g%%: %s", pct, v.Reason))
		}
		passed = append(passed, fmt.Sprintf("%g%%", pct))
		if r.st != nil && r.st.ReleaseID != "" {
			r.st.CanaryPassed = pct
			r.saveState(ctx)
		}
	}
	// Nobody is routed to the slot while it swaps: afterwards it holds the
	// previous release.
	if err := r.deps.App.SetTraffic(ctx, prod, t.Slot, 0); err != nil {
		return "", abort(err)
	}
	return fmt.Sprintf("gates passed at %s of new visitors; completing the swap", strings.Join(passed, ", ")), nil
}

// watch judges production's traffic for the watch period after the swap,
// adding each window to what came before, and swaps back at the first
// breach. Too little traffic by the end is reported, not a breach.
func (r *runner) watch(ctx context.Context) (string, error) {
	p := r.opt.Progressive
	meter := p.Meter(r.production())
	// Short windows, so a breach swaps back within seconds; the verdict
	// is on everything seen so far, so evidence still accumulates.
	window := min(max(p.Watch/10, 2*time.Second), 30*time.Second, p.Watch)
	end := time.Now().Add(p.Watch)
	var total gates.Measurement
	var v gates.Verdict
	for first := true; time.Now().Before(end); first = false {
		m, err := meter.Observe(ctx, min(window, time.Until(end)))
		if err != nil {
			return "", fmt.Errorf("watching production: %w", err)
		}
		if first {
			total = m
		} else {
			total.Requests += m.Requests
			total.Failed += m.Failed
			total.P95 = max(total.P95, m.P95)
			total.To = m.To
		}
		if v = gates.Judge(total, p.Gate); v.Outcome == gates.Fail {
			r.out.Gates = append(r.out.Gates, gateRecord(StepWatch, 0, v))
			r.rep.Warnf("watch: production breached its gate: %s; swapping back", v.Reason)
			if err := r.deps.App.SwapBack(context.WithoutCancel(ctx), appservice.SwapSpec{Target: r.opt.Target, Timeout: r.opt.SwapTimeout}); err != nil {
				return "", fmt.Errorf("watch: production breached its gate (%s) and the swap back failed: %w", v.Reason, err)
			}
			r.out.Live = false
			r.annotate(context.WithoutCancel(ctx), "rolled back by watch", map[string]string{"Reason": v.Reason})
			return "", problem.Failf("production serves the previous release again; fix the release and release again",
				"watch: production breached its gate after the swap: %s (swapped back)", v.Reason)
		}
	}
	r.out.Gates = append(r.out.Gates, gateRecord(StepWatch, 0, v))
	if v.Outcome == gates.Insufficient {
		r.rep.Warnf("watch: %s; the release stays live", v.Reason)
		return "watched " + p.Watch.String() + ": " + v.Reason, nil
	}
	return "watched " + p.Watch.String() + ": " + v.Reason, nil
}

// annotate writes a release event to the app's Application Insights; a
// failure to annotate never fails a release.
func (r *runner) annotate(ctx context.Context, event string, extra map[string]string) {
	if r.opt.Progressive.Annotate == nil {
		return
	}
	props := map[string]string{"ReleaseId": r.out.ReleaseID, "Event": event, "Outcome": r.out.Outcome}
	if r.out.FailedStep != "" {
		props["FailedStep"] = r.out.FailedStep
	}
	for k, v := range r.opt.Annotations {
		props[k] = v
	}
	for k, v := range extra {
		props[k] = v
	}
	name := "djdeploy " + event
	if r.out.ReleaseID != "" {
		name += " " + r.out.ReleaseID
	}
	if err := r.opt.Progressive.Annotate(ctx, name, props); err != nil {
		r.rep.Warnf("writing the release annotation: %v", err)
	}
}
