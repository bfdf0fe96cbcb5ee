package gates

import (
	"context"

	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/djdeploy/djdeploy/internal/insights"
)

// Insights measures a role's requests in Application Insights: it waits
// out the window, then asks for what the app recorded in it. Ingestion
// lags, so it asks again (bounded by Lag) while the count still grows.
type Insights struct {
	Client *insights.Client
	AppID  string
	Role   string        // cloud_RoleName: "<app>" or "<app>-<slot>"
	Lag    time.Duration // how long to wait for late telemetry (0: none)
	now    func() time.Time
}

// Observe implements Meter.
func (g *Insights) Observe(ctx context.Context, window time.Duration) (Measurement, error) {
	now := time.Now
	if g.now != nil {
		now = g.now
	}
	from := now()
	if err := sleep(ctx, window); err != nil {
		return Measurement{}, err
	}
	to := now()
	st, err := g.Client.Requests(ctx, g.AppID, g.Role, from, to)
	if err != nil {
		return Measurement{}, err
	}
	for deadline := now().Add(g.Lag); g.Lag > 0 && now().Before(deadline); {
		if err := sleep(ctx, min(5*time.Second, g.Lag)); err != nil {
			return Measurement{}, err
		}
		again, err := g.Client.Requests(ctx, g.AppID, g.Role, from, to)
		if err != nil {
			return Measurement{}, err
		}
		if again.Requests == st.Requests {
			break
		}
		st = again
	}
	return Measurement{Source: "application insights", Target: g.Role, Requests: st.Requests, Failed: st.Failed, P95: st.P95, From: from, To: to}, nil
}

// Probes measures a host by sending it requests itself for the window:
// without Application Insights, the only traffic djdeploy can see is its own.
type Probes struct {
	HTTP   *http.Client
	URL    string        // e.g. production's URL + "/"
	Cookie *http.Cookie  // e.g. x-ms-routing-name=staging to reach a slot through production's host
	Every  time.Duration // pause between requests (0: 100ms)
	// OK decides whether a status is a success (nil: below 500).
	OK     func(int) bool
	Target string
}

// Observe implements Meter.
func (p *Probes) Observe(ctx context.Context, window time.Duration) (Measurement, error) {
	every := p.Every
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	ok := p.OK
	if ok == nil {
		ok = func(s int) bool { return s < 500 }
	}
	client := p.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	m := Measurement{Source: "probes", Target: p.Target, From: time.Now()}
	var durs []time.Duration
	end := m.From.Add(window)
	for time.Now().Before(end) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
		if err != nil {
			return Measurement{}, fmt.Errorf("probing %s: %w", p.URL, err)
		}
		if p.Cookie != nil {
			req.AddCookie(p.Cookie)
		}
		start := time.Now()
		resp, err := client.Do(req)
		d := time.Since(start)
		m.Requests++
		durs = append(durs, d)
		switch {
		case err != nil && ctx.Err() != nil:
			return Measurement{}, ctx.Err()
		case err != nil:
			m.Failed++ // a refused or dropped connection is a failure users see
		default:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if !ok(resp.StatusCode) {
				m.Failed++
			}
		}
		if err := sleep(ctx, min(every, time.Until(end))); err != nil {
			return Measurement{}, err
		}
	}
	m.To = time.Now()
	m.P95 = p95(durs)
	return m, nil
}

func p95(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*95+99)/100 - 1
	return s[max(i, 0)]
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
