package appservice

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// swapFake adds site config and a swappable pair of releases: the slot and
// production app hosts serve "release <x>" and a swap exchanges them.
type swapFake struct {
	*fake
	mu          sync.Mutex
	prod, slot  string
	slotHealthy func(n int) int // status of the n-th slot probe
	prodHealthy func(rel string) int
	slotProbes  int
	swaps       int
	swapBodies  []map[string]any
}

func newSwapFake(t *testing.T, f *fake) *swapFake {
	s := &swapFake{fake: f, prod: "old", slot: "new",
		slotHealthy: func(int) int { return 200 }, prodHealthy: func(string) int { return 200 }}
	for _, slot := range []string{"", testSlot} {
		f.handle("GET "+sitePath(slot)+"/config/web", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"properties": map[string]any{"healthCheckPath": "/healthz"}})
		})
	}
	f.handleHost("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var code int
		var rel string
		if r.Host == f.slotHost() {
			s.slotProbes++
			code, rel = s.slotHealthy(s.slotProbes), s.slot
		} else {
			code, rel = s.prodHealthy(s.prod), s.prod
		}
		w.Header().Set("X-Release-Id", rel)
		w.WriteHeader(code)
		fmt.Fprintf(w, "release %s", rel)
	})
	f.handle("POST "+sitePath(testSlot)+"/slotsswap", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.swapBodies = append(s.swapBodies, body)
		s.mu.Unlock()
		w.Header().Set("Location", f.arm.URL+"/arm/subscriptions/"+testSub+"/providers/Microsoft.Web/operations/swap1")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusAccepted)
	})
	polls := 0
	f.handle("GET /subscriptions/"+testSub+"/providers/Microsoft.Web/operations/swap1", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		polls++
		if polls%2 == 1 {
			w.Header().Set("Location", f.arm.URL+"/arm"+r.URL.Path)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		s.swaps++
		s.prod, s.slot = s.slot, s.prod
		w.WriteHeader(http.StatusOK)
	})
	return s
}

func swapPlan() SwapPlan {
	return SwapPlan{Swap: SwapSpec{Target: slotTarget()}, WarmUp: HealthCheck{Timeout: 5 * time.Second}, Verify: HealthCheck{Timeout: 5 * time.Second}}
}

func TestSwapWarmsUpLateThenSwapsAndVerifies(t *testing.T) {
	f, c, _, out := setup(t)
	s := newSwapFake(t, f)
	s.slotHealthy = func(n int) int {
		if n < 3 {
			return 503
		}
		return 200
	}
	p := swapPlan()
	p.Verify.ExpectRelease = "new"
	rep, err := c.RunSwap(context.Background(), p)
	if err != nil {
		t.Fatalf("RunSwap: %v\n%s", err, out)
	}
	if !rep.Swapped || !rep.Verified || rep.RolledBack || rep.WarmUp.Attempts != 3 {
		t.Errorf("report = %+v warmup=%+v", rep, rep.WarmUp)
	}
	if s.prod != "new" || s.swaps != 1 {
		t.Errorf("production serves %q after %d swaps", s.prod, s.swaps)
	}
	if got := s.swapBodies[0]; got["targetSlot"] != "production" || got["preserveVnet"] != true {
		t.Errorf("swap body = %v", got)
	}
	if !strings.HasSuffix(rep.WarmUp.URL, "/healthz") || !strings.Contains(rep.WarmUp.URL, "localhost") {
		t.Errorf("warm-up URL = %q", rep.WarmUp.URL)
	}
}

func TestSwapNotDoneWhenWarmUpNeverSucceeds(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	s.slotHealthy = func(int) int { return 500 }
	p := swapPlan()
	p.WarmUp.Timeout = 50 * time.Millisecond
	rep, err := c.RunSwap(context.Background(), p)
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "HTTP 500") || !strings.Contains(pe.What, "release new") || !strings.Contains(pe.What, "nothing was swapped") {
		t.Fatalf("err = %v", err)
	}
	if rep.Swapped || f.count("POST "+sitePath(testSlot)+"/slotsswap") != 0 || s.prod != "old" {
		t.Errorf("swapped anyway: %+v, prod=%s", rep, s.prod)
	}
}

func TestSwapBackWhenVerificationFails(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	s.prodHealthy = func(rel string) int {
		if rel == "new" {
			return 500
		}
		return 200
	}
	p := swapPlan()
	p.Verify.Timeout = 50 * time.Millisecond
	rep, err := c.RunSwap(context.Background(), p)
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "swapped back") {
		t.Fatalf("err = %v", err)
	}
	if !rep.Swapped || !rep.RolledBack || rep.Verified {
		t.Errorf("report = %+v", rep)
	}
	if s.prod != "old" || s.swaps != 2 {
		t.Errorf("production serves %q after %d swaps, want old after 2", s.prod, s.swaps)
	}
}

func TestSwapVerifyExpectsRelease(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	p := swapPlan()
	p.Verify.Timeout = 50 * time.Millisecond
	p.Verify.ExpectRelease = "r-999"
	p.NoRollback = true
	rep, err := c.RunSwap(context.Background(), p)
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.What, "not swapped back") || !strings.Contains(err.Error(), "without the expected release id") {
		t.Fatalf("err = %v", err)
	}
	if rep.RolledBack || s.swaps != 1 {
		t.Errorf("rolled back despite --no-rollback: %+v swaps=%d", rep, s.swaps)
	}
}

func TestSwapHonoursRetryAfterOn429(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	var mu sync.Mutex
	n := 0
	inner := f.mux
	f.mux = http.NewServeMux()
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/slotsswap") {
			mu.Lock()
			n++
			first := n == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				writeJSON(w, 429, map[string]any{"error": map[string]any{"code": "TooManyRequests", "message": "throttled"}})
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
	// The ARM server dispatches through f.mux at request time.
	rep, err := c.RunSwap(context.Background(), swapPlan())
	if err != nil {
		t.Fatalf("RunSwap: %v", err)
	}
	if !rep.Swapped || n != 2 || s.swaps != 1 {
		t.Errorf("swapped=%v swap POSTs=%d swaps=%d", rep.Swapped, n, s.swaps)
	}
}

func TestPreviewCompleteCancel(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	var applied map[string]any
	f.handle("POST "+sitePath(testSlot)+"/applySlotConfig", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&applied)
		w.WriteHeader(200)
	})
	f.handle("POST "+sitePath(testSlot)+"/resetSlotConfig", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })

	p := swapPlan()
	p.Action = "preview"
	rep, err := c.RunSwap(context.Background(), p)
	if err != nil || !rep.Previewed || rep.Swapped || rep.WarmUp == nil || applied["targetSlot"] != "production" {
		t.Fatalf("preview: %+v, %v, body %v", rep, err, applied)
	}
	p.Action = "cancel"
	if rep, err := c.RunSwap(context.Background(), p); err != nil || !rep.Cancelled || f.count("POST "+sitePath(testSlot)+"/resetSlotConfig") != 1 {
		t.Fatalf("cancel: %+v, %v", rep, err)
	}
	p.Action = "complete"
	if rep, err := c.RunSwap(context.Background(), p); err != nil || !rep.Swapped || s.prod != "new" {
		t.Fatalf("complete: %+v, %v, prod=%s", rep, err, s.prod)
	}
}

func TestWarmUpAuthHints(t *testing.T) {
	f, c, _, _ := setup(t)
	newSwapFake(t, f)
	f.handleHost("GET /login-redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://login.microsoftonline.com/tenant/oauth2/authorize", http.StatusFound)
	})
	f.handleHost("GET /needs-auth", status(401, "Unauthorized"))
	for path, want := range map[string]string{"/login-redirect": "authentication stands in front", "/needs-auth": "401"} {
		_, err := c.WarmUp(context.Background(), slotTarget(), HealthCheck{Path: path, Timeout: 30 * time.Millisecond})
		pe, ok := problem.As(err)
		if !ok || !strings.Contains(pe.Fix, want) {
			t.Errorf("%s: err = %v (fix %q)", path, err, pe.Fix)
		}
	}
}

func TestWarmUpUnreachableHint(t *testing.T) {
	f, c, _, _ := setup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	f.mux = http.NewServeMux()
	f.handle("GET "+sitePath(testSlot), func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": map[string]any{"defaultHostName": closed}})
	})
	_, err = c.WarmUp(context.Background(), slotTarget(), HealthCheck{Path: "/", Timeout: 30 * time.Millisecond})
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.Fix, "cannot reach the slot") {
		t.Fatalf("err = %v", err)
	}
}

func TestHealthPathFallbacks(t *testing.T) {
	f, c, _, _ := setup(t)
	f.handle("GET "+sitePath(testSlot)+"/config/web", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": map[string]any{}})
	})
	f.handle("POST "+sitePath(testSlot)+"/config/appsettings/list", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"properties": map[string]string{"WEBSITE_SWAP_WARMUP_PING_PATH": "warm"}})
	})
	if p, err := c.HealthPath(context.Background(), slotTarget(), ""); err != nil || p != "/warm" {
		t.Errorf("HealthPath = %q, %v", p, err)
	}
	if p, _ := c.HealthPath(context.Background(), slotTarget(), "/x"); p != "/x" {
		t.Errorf("override = %q", p)
	}
}

func TestParseStatuses(t *testing.T) {
	s, err := ParseStatuses([]string{"200-299", "302"})
	if err != nil || !s.Has(204) || !s.Has(302) || s.Has(301) || s.Has(500) {
		t.Errorf("ParseStatuses = %v, %v", s, err)
	}
	if _, err := ParseStatuses([]string{"abc"}); problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("bad status err = %v", err)
	}
	if s, _ := ParseStatuses(nil); !s.Has(399) || s.Has(400) {
		t.Error("default statuses should be 200-399")
	}
}

func TestSwapSpecValidation(t *testing.T) {
	_, c, _, _ := setup(t)
	err := c.Swap(context.Background(), SwapSpec{Target: Target{ResourceGroup: testRG, App: testApp, Slot: "production"}})
	if problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("swap production with itself: %v", err)
	}
}

func TestSwapSkipWarmUp(t *testing.T) {
	f, c, _, _ := setup(t)
	s := newSwapFake(t, f)
	p := swapPlan()
	p.SkipWarmUp = true
	rep, err := c.RunSwap(context.Background(), p)
	if err != nil || rep.WarmUp != nil || !rep.Swapped || !rep.Verified {
		t.Fatalf("RunSwap: %+v, %v", rep, err)
	}
	if s.slotProbes != 0 {
		t.Errorf("the slot was probed %d times", s.slotProbes)
	}
}
