package progress

import (
	"reflect"
	"sync"
	"time"
)

// HeartbeatInterval is how often a long step says it is still running in a
// log that is not a terminal: under the 30 s after which people (and some
// CI systems' idle timeouts) take a silent log for a hung job.
const HeartbeatInterval = 20 * time.Second

// Spinner is implemented by reporters that show a long step themselves,
// such as a bar on a terminal.
type Spinner interface {
	Spin(what string) (stop func())
}

// Clock is the time source of heartbeats; tests give a fake one.
type Clock interface {
	Now() time.Time
	// Ticker returns a channel that receives every d, and its stop.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// heartbeats are the long steps running on each reporter, innermost last:
// only the innermost speaks, so a swap inside a release's swap step gives
// one line per interval, not two.
var (
	beatMu    sync.Mutex
	beatStack = map[Reporter][]*beat{}
	// clock and interval are the heartbeats' time source, replaced by tests.
	clock    Clock = realClock{}
	interval       = HeartbeatInterval
)

type beat struct {
	what  string
	start time.Time
}

// Long reports a long step (a build, an upload, a deployment, a swap, a
// purge) on r until stop is called: a reporter that draws on a terminal
// shows it (Spinner); any other writes "<what>: still running after 1m0s"
// every HeartbeatInterval, so a CI log never goes quiet for minutes.
// Every command and step that may wait for long goes through it.
func Long(r Reporter, what string) (stop func()) {
	if s, ok := r.(Spinner); ok {
		return s.Spin(what)
	}
	c, every := clock, interval
	b := &beat{what: what, start: c.Now()}
	if !reflect.TypeOf(r).Comparable() {
		// not a map key: this reporter's heartbeats all speak
		return heartbeat(r, b, c, every, func() bool { return true }, func() {})
	}
	beatMu.Lock()
	beatStack[r] = append(beatStack[r], b)
	beatMu.Unlock()
	inner := func() bool {
		beatMu.Lock()
		defer beatMu.Unlock()
		st := beatStack[r]
		return len(st) > 0 && st[len(st)-1] == b
	}
	return heartbeat(r, b, c, every, inner, func() {
		beatMu.Lock()
		defer beatMu.Unlock()
		st := beatStack[r]
		for i := range st {
			if st[i] == b {
				st = append(st[:i], st[i+1:]...)
				break
			}
		}
		if len(st) == 0 {
			delete(beatStack, r)
		} else {
			beatStack[r] = st
		}
	})
}

// heartbeat writes b's line on r every interval while speak says so, until
// the returned stop (which then calls done).
func heartbeat(r Reporter, b *beat, c Clock, every time.Duration, speak func() bool, done func()) (stop func()) {
	tick, stopTick := c.Ticker(every)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		defer stopTick()
		for {
			select {
			case <-quit:
				return
			case <-tick:
				if speak() {
					r.Infof("%s: still running after %s", b.what, c.Now().Sub(b.start).Round(time.Second))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-finished
			done()
		})
	}
}
