package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Terminal reports to a terminal: a bar for counted work (files
// uploaded), a spinner with the elapsed time for every Long step, and
// lines printed above them. CI logs get Lines instead: a log has no use
// for carriage returns.
type Terminal struct {
	w io.Writer

	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	what  string // the bar's work, for Count; "" for a spinner
	spins []string
	// stopAnim ends the goroutine that turns the current spinner (the
	// library's own keeps drawing after Exit).
	stopAnim chan struct{}
}

// NewTerminal draws on w, which must be a terminal.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

func (t *Terminal) Infof(format string, args ...any) { t.line(format, args...) }

func (t *Terminal) Warnf(format string, args ...any) { t.line("warning: "+format, args...) }

// line prints above the bar: the bar is cleared, the line written, and
// the bar drawn again below it.
func (t *Terminal) line(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != nil {
		_ = t.bar.Clear()
	}
	fmt.Fprintf(t.w, format+"\n", args...)
	if t.bar != nil {
		_ = t.bar.RenderBlank()
	}
}

// Count draws a bar for what; a finished bar gives way to the spinner of
// the step still running.
func (t *Terminal) Count(what string, done, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if total <= 0 {
		return
	}
	if t.bar == nil || t.what != what {
		t.clear()
		t.what = what
		t.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(t.w), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionSetElapsedTime(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetRenderBlankState(true))
	}
	_ = t.bar.Set64(done)
	if done >= total {
		t.clear()
		t.spin()
	}
}

// Spin shows what as a spinner with its elapsed time until stop.
func (t *Terminal) Spin(what string) (stop func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spins = append(t.spins, what)
	if t.bar == nil || t.what == "" {
		t.clear()
		t.spin()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			for i := len(t.spins) - 1; i >= 0; i-- {
				if t.spins[i] == what {
					t.spins = append(t.spins[:i], t.spins[i+1:]...)
					break
				}
			}
			if t.what == "" {
				t.clear()
				t.spin()
			}
		})
	}
}

// spin draws the innermost running step's spinner, if any. t.mu is held.
func (t *Terminal) spin() {
	if len(t.spins) == 0 {
		return
	}
	t.what = ""
	bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(t.w), progressbar.OptionSetDescription(t.spins[len(t.spins)-1]),
		progressbar.OptionSpinnerType(14), progressbar.OptionSetElapsedTime(true), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetSpinnerChangeInterval(0), progressbar.OptionSetRenderBlankState(true))
	t.bar = bar
	stop := make(chan struct{})
	t.stopAnim = stop
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				t.mu.Lock()
				if t.bar == bar {
					_ = bar.Add(1)
				}
				t.mu.Unlock()
			}
		}
	}()
}

// clear removes the bar. t.mu is held.
func (t *Terminal) clear() {
	if t.stopAnim != nil {
		close(t.stopAnim)
		t.stopAnim = nil
	}
	if t.bar != nil {
		_ = t.bar.Exit()
		_ = t.bar.Clear()
		t.bar, t.what = nil, ""
	}
}
