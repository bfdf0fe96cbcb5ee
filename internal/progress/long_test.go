package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time and ticks the test drives: each Ticker
// call gets its own unbuffered channel, so a send returns only once the
// heartbeat took the tick, and a second send only once it handled the first.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []chan time.Time
	stopped []bool
	every   []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time)
	i := len(c.tickers)
	c.tickers, c.stopped, c.every = append(c.tickers, ch), append(c.stopped, false), append(c.every, d)
	return ch, func() { c.mu.Lock(); c.stopped[i] = true; c.mu.Unlock() }
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tick delivers one tick to ticker i: the send returns once its heartbeat
// took it, and the next send to it once that tick was handled.
func (c *fakeClock) tick(i int) {
	c.mu.Lock()
	ch := c.tickers[i]
	c.mu.Unlock()
	ch <- c.Now()
}

func useClock(t *testing.T) *fakeClock {
	c := &fakeClock{now: time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)}
	oldC, oldI := clock, interval
	clock, interval = c, HeartbeatInterval
	t.Cleanup(func() { clock, interval = oldC, oldI })
	return c
}

// syncBuffer is a log the heartbeat goroutine and the test share.
type syncBuffer struct {
	mu   sync.Mutex
	cond *sync.Cond
	b    bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	defer s.cond.Broadcast()
	return s.b.Write(p)
}

// waitLines waits until the log has n lines (the test's deadline bounds it).
func (s *syncBuffer) waitLines(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	for strings.Count(s.b.String(), "\n") < n {
		s.cond.Wait()
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLongHeartbeat(t *testing.T) {
	c := useClock(t)
	var log syncBuffer
	l := NewLines(&log)
	stop := Long(l, "deploying app.zip")
	if c.every[0] > 30*time.Second {
		t.Fatalf("heartbeat every %s: a CI log would stay quiet for more than 30 s", c.every[0])
	}
	if log.String() != "" {
		t.Fatalf("a line before any tick: %q", log.String())
	}
	c.advance(20 * time.Second)
	c.tick(0)
	log.waitLines(1)
	c.advance(25 * time.Second)
	c.tick(0)
	log.waitLines(2)
	stop()
	stop() // a second stop is harmless
	got := log.String()
	for _, want := range []string{"deploying app.zip: still running after 20s\n", "deploying app.zip: still running after 45s\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in the log:\n%s", want, got)
		}
	}
	if !c.stopped[0] {
		t.Error("the ticker was not stopped")
	}
}

// A long wait inside a long step (a swap inside the release's swap step)
// speaks once per interval: only the innermost says it is still running.
func TestLongNestedSpeaksInnermost(t *testing.T) {
	c := useClock(t)
	var log syncBuffer
	l := NewLines(&log)
	endStep := Step(l, "swap")
	stopSwap := Long(l, "swapping demo-app/staging")
	c.advance(time.Minute)
	c.tick(0) // the step's heartbeat: silent while the swap's runs
	c.tick(1)
	log.waitLines(2)
	stopSwap()
	// the step speaks again once the swap is done; this second tick is
	// taken only after the first was handled, so a line the first wrongly
	// wrote is in the log by the time this one's is
	c.tick(0)
	log.waitLines(3)
	endStep()
	want := "== swap\nswapping demo-app/staging: still running after 1m0s\nswap: still running after 1m0s\n"
	if log.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", log.String(), want)
	}
}

type groupLog struct {
	Lines
	events []string
}

func (g *groupLog) StartGroup(title string) { g.events = append(g.events, "group "+title) }
func (g *groupLog) EndGroup()               { g.events = append(g.events, "end") }

// In a CI log each step is a group, and its heartbeat stays inside it.
func TestStepHeartbeatInGroup(t *testing.T) {
	c := useClock(t)
	var log syncBuffer
	g := &groupLog{Lines: Lines{W: &log}}
	end := Step(g, "build")
	c.advance(30 * time.Second)
	c.tick(0)
	log.waitLines(1)
	end()
	if log.String() != "build: still running after 30s\n" || strings.Join(g.events, ",") != "group build,end" {
		t.Fatalf("log %q, groups %v", log.String(), g.events)
	}
}
