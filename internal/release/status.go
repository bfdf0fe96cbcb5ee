package release

import (
	"context"
	"fmt"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// SlotStatus is what one slot (or production) runs now.
type SlotStatus struct {
	Slot string `json:"slot"`
	// ReleaseID is the release whose deployment the slot runs, recognised
	// by content (Kudu's active deployment, as the ledger recorded it);
	// "" when no release recorded that deployment.
	ReleaseID string `json:"release_id"`
	// Label is the DJDEPLOY_RELEASE_ID app setting the slot carries.
	Label      string `json:"label"`
	Deployment string `json:"deployment_id"`
	// Recorded is false when no release or rollback the ledger knows made
	// the slot's active deployment: someone deployed by other means.
	Recorded bool   `json:"recorded"`
	Commit   string `json:"commit,omitempty"`
	RunURL   string `json:"run_url,omitempty"`
	// When is when the run that made the deployment started.
	When *time.Time `json:"when,omitempty"`
	// TrafficPercent is the share of production's visitors routed to the
	// slot (a canary in progress); 0 for production.
	TrafficPercent float64 `json:"traffic_percent,omitempty"`
	Warning        string  `json:"warning,omitempty"`
}

// Status is `djdeploy status`.
type Status struct {
	App        string       `json:"app"`
	Production SlotStatus   `json:"production"`
	Slots      []SlotStatus `json:"slots"`
	// History is the release production history names as live (the last
	// swap djdeploy recorded).
	History string `json:"history_release,omitempty"`
	// Lock is who holds the release lock now ("" when nobody does).
	Lock string `json:"lock,omitempty"`
	// Canary is a canary release in progress: its release and the largest
	// share of traffic whose gate passed.
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// CanaryStatus is a canary release in progress, as its resume state and
// production's routing rules say.
type CanaryStatus struct {
	ReleaseID     string  `json:"release_id"`
	Slot          string  `json:"slot"`
	Percent       float64 `json:"percent"`
	PassedPercent float64 `json:"passed_percent"`
}

// ReadStatus reads what production and each slot run, from Azure (Kudu's
// active deployments, the app settings, the routing rules) and the ledger.
// Only read requests are made.
func ReadStatus(ctx context.Context, app *appservice.Client, static *staticsync.Client, prod appservice.Target) (*Status, error) {
	prod.Slot = "production"
	entries, err := ledger.New(static.Store()).Entries(ctx)
	if err != nil {
		return nil, err
	}
	slots, err := app.Slots(ctx, prod.ResourceGroup, prod.App)
	if err != nil {
		return nil, err
	}
	traffic, err := app.Traffic(ctx, prod)
	if err != nil {
		return nil, err
	}
	st := &Status{App: prod.App}
	if st.Production, err = slotStatus(ctx, app, prod, entries); err != nil {
		return nil, err
	}
	for _, s := range slots {
		t := prod
		t.Slot = s
		ss, err := slotStatus(ctx, app, t, entries)
		if err != nil {
			return nil, err
		}
		ss.TrafficPercent = traffic[s]
		st.Slots = append(st.Slots, ss)
		if ss.TrafficPercent > 0 {
			c := &CanaryStatus{ReleaseID: ss.ReleaseID, Slot: s, Percent: ss.TrafficPercent}
			if c.ReleaseID == "" {
				c.ReleaseID = ss.Label
			}
			var rs state
			if found, err := static.Store().GetJSON(ctx, stateName(c.ReleaseID), &rs); err == nil && found && rs.Slot == s {
				c.PassedPercent = rs.CanaryPassed
			}
			st.Canary = c
		}
	}
	if hist, err := static.History(ctx); err != nil {
		return nil, err
	} else if len(hist) > 0 {
		st.History = hist[len(hist)-1].ReleaseID
	}
	holder, err := staticsync.ReadLockHolder(ctx, static)
	if err != nil {
		return nil, err
	}
	if holder.Leased {
		st.Lock = holder.String()
	}
	return st, nil
}

func slotStatus(ctx context.Context, app *appservice.Client, t appservice.Target, entries []ledger.Entry) (SlotStatus, error) {
	ss := SlotStatus{Slot: t.Slot}
	settings, err := app.AppSettings(ctx, t)
	if err != nil {
		return ss, fmt.Errorf("reading %s's app settings: %w", t.Slot, err)
	}
	ss.Label = settings[ReleaseIDSetting]
	if ss.Deployment, err = app.ActiveDeployment(ctx, t); err != nil {
		return ss, err
	}
	e, ok := ledger.ByDeployment(entries, ss.Deployment)
	switch {
	case ok:
		start := e.Start
		ss.Recorded, ss.ReleaseID, ss.Commit, ss.RunURL, ss.When = true, e.ReleaseID, e.Commit, e.RunURL, &start
		if ss.Label != "" && ss.Label != e.ReleaseID {
			ss.Warning = fmt.Sprintf("labelled %s, but runs the deployment release %s made", ss.Label, e.ReleaseID)
		}
	case ss.Deployment == "":
		ss.Warning = "nothing deployed"
	default:
		ss.Warning = fmt.Sprintf("runs deployment %s, which no release recorded (deployed by other means)", ss.Deployment)
		if ss.Label != "" {
			ss.Warning += "; its label " + ss.Label + " does not prove what runs"
		}
	}
	return ss, nil
}
