// Package ledger is the release ledger: one entry per release and
// rollback that got as far as a release id, succeeded or not, kept in the
// private state container beside the lock, so `djdeploy releases`,
// `status` and `rollback` can answer from any runner, with no checkout.
package ledger

import (
	"context"
	"time"

	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// Name is the ledger's file under .djdeploy/ in the state container.
const Name = "ledger.json"

// MaxEntries bounds the ledger; the oldest entries go first.
const MaxEntries = 500

// Kinds of entry.
const (
	KindRelease  = "release"
	KindRollback = "rollback"
	// KindPreview is a pull request's preview on its own slot: recorded so
	// status can name what a pr-<n> slot runs; it never reaches production.
	KindPreview = "preview"
)

// Entry is one release or rollback.
type Entry struct {
	// ReleaseID is what the run put (or tried to put) into production; for
	// a rollback, the release it went back to.
	ReleaseID string `json:"release_id"`
	Kind      string `json:"kind"`
	App       string `json:"app"`
	Slot      string `json:"slot"`
	// Commit and RunURL say what triggered it (from CI's environment).
	Commit string    `json:"commit,omitempty"`
	RunURL string    `json:"run_url,omitempty"`
	Start  time.Time `json:"start"`
	// DurationSeconds is how long the run took.
	DurationSeconds float64 `json:"duration_seconds"`
	// Outcome is "succeeded" or "failed" (report.Release's outcome).
	Outcome    string `json:"outcome"`
	FailedStep string `json:"failed_step,omitempty"`
	Error      string `json:"error,omitempty"`
	// LockHolder is who held the release lock: CI run, host, pid.
	LockHolder string `json:"lock_holder,omitempty"`
	// Deployment is the Kudu deployment id that put this release on the
	// slot: what `status` recognises a slot's content by.
	Deployment string `json:"deployment_id,omitempty"`
	// From is, for a rollback, the release production ran before it.
	From string `json:"from_release,omitempty"`
	// Live is true when production ran this release at the end of the run.
	Live bool `json:"live"`
}

// document is ledger.json.
type document struct {
	Schema  int     `json:"schema"`
	Entries []Entry `json:"entries"` // oldest first
}

// Ledger reads and appends entries in one app's state.
type Ledger struct{ store *staticsync.Store }

// New is the ledger kept in store (staticsync.Client.Store()).
func New(store *staticsync.Store) *Ledger { return &Ledger{store: store} }

// Append adds e. Concurrent writers are safe (the document is written
// with an ETag condition and retried).
func (l *Ledger) Append(ctx context.Context, e Entry) error {
	return staticsync.UpdateJSON(ctx, l.store, Name, func(d *document) error {
		d.Schema = 1
		d.Entries = append(d.Entries, e)
		if len(d.Entries) > MaxEntries {
			d.Entries = d.Entries[len(d.Entries)-MaxEntries:]
		}
		return nil
	})
}

// Entries returns every entry, newest first.
func (l *Ledger) Entries(ctx context.Context) ([]Entry, error) {
	var d document
	if _, err := l.store.GetJSON(ctx, Name, &d); err != nil {
		return nil, err
	}
	out := make([]Entry, len(d.Entries))
	for i, e := range d.Entries {
		out[len(d.Entries)-1-i] = e
	}
	return out, nil
}

// ByDeployment finds the newest entry whose run deployed deployment (a
// Kudu deployment id), so a slot's content is named by what put it
// there, not by the label it carries.
func ByDeployment(entries []Entry, deployment string) (Entry, bool) {
	if deployment == "" {
		return Entry{}, false
	}
	for _, e := range entries {
		if e.Deployment == deployment {
			return e, true
		}
	}
	return Entry{}, false
}
