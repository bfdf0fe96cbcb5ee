// Package gates judges a release by what its traffic did: the failure rate,
// the 95th-percentile duration and the number of requests over a window,
// against thresholds. The figures come from Application Insights (the
// requests the app itself recorded, per slot) or, without it, from
// djdeploy's own probes of the hosts, and every verdict says which.
//
// Too little traffic is never a pass: it is "not enough evidence", which a
// caller may wait out once before failing.
package gates

import (
	"context"
	"fmt"
	"time"
)

// Thresholds are what a window of traffic must stay within.
type Thresholds struct {
	MaxFailureRate float64       // failed / requests, 0..1
	MaxP95         time.Duration // 0: not checked
	MinRequests    int           // fewer is not enough evidence
}

// Measurement is a window of one target's traffic.
type Measurement struct {
	Source   string        `json:"source"` // "application insights" or "probes"
	Target   string        `json:"target"` // the slot or host measured
	Requests int           `json:"requests"`
	Failed   int           `json:"failed"`
	P95      time.Duration `json:"p95_ms"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
}

// FailureRate is failed / requests (0 with no requests).
func (m Measurement) FailureRate() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.Failed) / float64(m.Requests)
}

// Outcome is a gate's verdict.
type Outcome string

const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Insufficient Outcome = "not enough evidence"
)

// Verdict is an outcome with its figures and the reason in words.
type Verdict struct {
	Outcome     Outcome     `json:"outcome"`
	Measurement Measurement `json:"measurement"`
	Reason      string      `json:"reason"`
}

// Judge compares a measurement with the thresholds.
func Judge(m Measurement, th Thresholds) Verdict {
	v := Verdict{Measurement: m}
	figures := fmt.Sprintf("%d requests, %d failed (%.1f%%), p95 %s, from %s", m.Requests, m.Failed, 100*m.FailureRate(), m.P95.Round(time.Millisecond), m.Source)
	switch {
	case m.Requests == 0 || m.Requests < th.MinRequests:
		v.Outcome = Insufficient
		v.Reason = fmt.Sprintf("not enough evidence: %s; at least %d needed", figures, max(th.MinRequests, 1))
	case m.FailureRate() > th.MaxFailureRate:
		v.Outcome = Fail
		v.Reason = fmt.Sprintf("failure rate %.1f%% is over the %.1f%% allowed: %s", 100*m.FailureRate(), 100*th.MaxFailureRate, figures)
	case th.MaxP95 > 0 && m.P95 > th.MaxP95:
		v.Outcome = Fail
		v.Reason = fmt.Sprintf("p95 %s is over the %s allowed: %s", m.P95.Round(time.Millisecond), th.MaxP95, figures)
	default:
		v.Outcome = Pass
		v.Reason = figures
	}
	return v
}

// Meter measures one target's traffic over a window that starts now.
type Meter interface {
	Observe(ctx context.Context, window time.Duration) (Measurement, error)
}

// Evaluate observes a window and judges it. When the window had too little
// traffic it observes one more window and judges both together: a quiet
// interval gets a second chance, never a pass.
func Evaluate(ctx context.Context, m Meter, window time.Duration, th Thresholds) (Verdict, error) {
	first, err := m.Observe(ctx, window)
	if err != nil {
		return Verdict{}, err
	}
	v := Judge(first, th)
	if v.Outcome != Insufficient {
		return v, nil
	}
	second, err := m.Observe(ctx, window)
	if err != nil {
		return Verdict{}, err
	}
	return Judge(merge(first, second), th), nil
}

// merge adds two consecutive windows (the p95 is the worse of the two: a
// bound, since the exact one needs the raw durations).
func merge(a, b Measurement) Measurement {
	out := a
	out.Requests += b.Requests
	out.Failed += b.Failed
	out.P95 = max(a.P95, b.P95)
	out.To = b.To
	return out
}
