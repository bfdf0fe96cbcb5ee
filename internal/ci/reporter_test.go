package ci

import (
	"reflect"
	"testing"
	"time"
)

// recordLog records what the reporter asks of a CI log.
type recordLog struct{ calls []string }

func (l *recordLog) Mask(v string)      { l.calls = append(l.calls, "mask "+v) }
func (l *recordLog) Info(line string)   { l.calls = append(l.calls, "info "+line) }
func (l *recordLog) Warn(msg string)    { l.calls = append(l.calls, "warn "+msg) }
func (l *recordLog) Group(title string) { l.calls = append(l.calls, "group "+title) }
func (l *recordLog) EndGroup()          { l.calls = append(l.calls, "endgroup") }

func TestReporter(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(r *Reporter)
		want []string
	}{
		{"a multi-line secret is masked whole and by its long lines, once", func(r *Reporter) {
			r.Mask("  -----BEGIN KEY-----\nabcdefghij\r\n==\n")
			r.Mask("abcdefghij")
			r.Mask("   ")
		}, []string{"mask -----BEGIN KEY-----\nabcdefghij\r\n==", "mask -----BEGIN KEY-----", "mask abcdefghij"}},
		{"counts between intervals are dropped, the last one is not", func(r *Reporter) {
			r.Interval = time.Hour
			r.Count("files", 1, 4)
			r.Count("files", 2, 4)
			r.Count("bytes", 5, 0)
			r.Count("files", 4, 4)
		}, []string{"info   files: 1/4 (25%)", "info   bytes: 5", "info   files: 4/4 (100%)"}},
		{"a new group closes the open one; EndGroup closes only an open one", func(r *Reporter) {
			r.EndGroup()
			r.StartGroup("build")
			r.Infof("%d files", 3)
			r.StartGroup("deploy")
			r.Warnf("slow %s", "slot")
			r.EndGroup()
			r.EndGroup()
		}, []string{"group build", "info 3 files", "endgroup", "group deploy", "warn slow slot", "endgroup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &recordLog{}
			tc.do(NewReporter(l))
			if !reflect.DeepEqual(l.calls, tc.want) {
				t.Errorf("calls\n%q\nwant\n%q", l.calls, tc.want)
			}
		})
	}
}
