package ledger

import "testing"

func TestByDeployment(t *testing.T) {
	// Newest first: a rollback that reused a release's deployment names it
	// after the release's own entry did.
	entries := []Entry{
		{ReleaseID: "b", Kind: KindRollback, Deployment: "d1"},
		{ReleaseID: "c", Kind: KindRelease, Deployment: "d2"},
		{ReleaseID: "b", Kind: KindRelease, Deployment: "d1"},
		{ReleaseID: "a", Kind: KindRelease},
	}
	for _, tc := range []struct {
		deployment string
		want       string
		kind       string
		found      bool
	}{
		{"d1", "b", KindRollback, true},
		{"d2", "c", KindRelease, true},
		{"", "", "", false}, // no deployment id: never matches the entry without one
		{"d9", "", "", false},
	} {
		e, ok := ByDeployment(entries, tc.deployment)
		if ok != tc.found || e.ReleaseID != tc.want || e.Kind != tc.kind {
			t.Errorf("ByDeployment(%q) = %+v, %t; want %s (%s), %t", tc.deployment, e, ok, tc.want, tc.kind, tc.found)
		}
	}
}
