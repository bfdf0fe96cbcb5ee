package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// operation is a long-running ARM operation (swap, purge) polled through
// its operationresults URL.
type operation struct {
	id    string
	kind  string // swap | purge
	done  bool
	err   *opError
	polls int
	start time.Time
	end   time.Time
}

type opError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SwapRecord is one swap, successful or not, for /_emulator/state.
type SwapRecord struct {
	App       string    `json:"app"`
	Source    string    `json:"source"`
	Target    string    `json:"target"`
	Time      time.Time `json:"time"`
	Succeeded bool      `json:"succeeded"`
	Error     string    `json:"error,omitempty"`
	// Releases are the deployment ids the two slots held after the swap
	// (source, target).
	Releases [2]string `json:"releases"`
}

func (e *Emulator) newOperation(kind string) *operation {
	op := &operation{id: newGUID(), kind: kind, start: time.Now().UTC()}
	e.mu.Lock()
	e.ops[op.id] = op
	e.mu.Unlock()
	return op
}

func (e *Emulator) finishOperation(op *operation, err *opError) {
	e.mu.Lock()
	op.done, op.err, op.end = true, err, time.Now().UTC()
	e.mu.Unlock()
}

// operationURL is where the client polls an operation: the ARM address the
// request came to, with its scheme (https stays https).
func (e *Emulator) operationURL(r *http.Request, rg, namespace, id string) string {
	return fmt.Sprintf("%s%s/subscriptions/%s/resourceGroups/%s/providers/%s/operationresults/%s?api-version=2024-04-01",
		requestBase(r), e.cfg.ARMBasePath, e.res.Subscription, rg, namespace, id)
}

// serveOperation answers a poll. Swaps follow the Location protocol (202
// while running, then 200, or an ARM error); purges the
// Azure-AsyncOperation one (200 with {"status":...}). Every operation
// answers "in progress" at least once, as Azure's do.
func (e *Emulator) serveOperation(q *armReq, id string) {
	e.mu.Lock()
	op := e.ops[id]
	if op == nil {
		e.mu.Unlock()
		armError(q.w, http.StatusNotFound, "OperationNotFound", fmt.Sprintf("The operation '%s' could not be found.", id))
		return
	}
	running := !op.done || op.polls == 0
	op.polls++
	kind, opErr, start, end := op.kind, op.err, op.start, op.end
	e.mu.Unlock()
	ra := strconv.Itoa(e.cfg.RetryAfter)
	if kind == "purge" {
		body := map[string]any{"id": q.r.URL.Path, "name": id, "startTime": start.Format(time.RFC3339Nano)}
		switch {
		case running:
			body["status"] = "InProgress"
			q.w.Header().Set("Retry-After", ra)
		case opErr != nil:
			body["status"], body["endTime"], body["error"] = "Failed", end.Format(time.RFC3339Nano), opErr
		default:
			body["status"], body["endTime"] = "Succeeded", end.Format(time.RFC3339Nano)
		}
		writeJSON(q.w, http.StatusOK, body)
		return
	}
	switch {
	case running:
		q.w.Header().Set("Location", requestBase(q.r)+q.r.URL.RequestURI())
		q.w.Header().Set("Retry-After", ra)
		q.w.WriteHeader(http.StatusAccepted)
	case opErr != nil:
		armError(q.w, http.StatusBadRequest, opErr.Code, opErr.Message)
	default:
		q.w.WriteHeader(http.StatusOK)
	}
}

type csmSlotEntity struct {
	TargetSlot   string `json:"targetSlot"`
	PreserveVnet *bool  `json:"preserveVnet"`
}

func readSlotEntity(q *armReq) (csmSlotEntity, bool) {
	var body csmSlotEntity
	b, _ := io.ReadAll(io.LimitReader(q.r.Body, 1<<20))
	if err := json.Unmarshal(b, &body); err != nil {
		armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
		return body, false
	}
	if body.TargetSlot == "" {
		armError(q.w, http.StatusBadRequest, "BadRequest", "The parameter targetSlot is required.")
		return body, false
	}
	return body, true
}

// startSwap is POST .../[slots/{slot}/]slotsswap: 202 + Location +
// Retry-After, then the warm-up and the switch run in the background.
func (e *Emulator) startSwap(q *armReq, src *slot) {
	body, ok := readSlotEntity(q)
	if !ok {
		return
	}
	s := src.site
	e.mu.Lock()
	dst := s.slots[strings.ToLower(body.TargetSlot)]
	switch {
	case dst == nil:
		e.mu.Unlock()
		armError(q.w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Cannot swap: the slot '%s' of site '%s' does not exist.", body.TargetSlot, s.cfg.Name))
		return
	case dst == src:
		e.mu.Unlock()
		armError(q.w, http.StatusBadRequest, "BadRequest", "Cannot swap a slot with itself.")
		return
	case s.swapping:
		e.mu.Unlock()
		armError(q.w, http.StatusConflict, "Conflict", "Cannot modify this site because another operation is in progress.")
		return
	}
	s.swapping = true
	e.mu.Unlock()
	op := e.newOperation("swap")
	e.logf("arm: swap %s <-> %s started (operation %s)", src.resourceName(), dst.name, op.id)
	go e.runSwap(op, src, dst)
	q.w.Header().Set("Location", e.operationURL(q.r, s.cfg.ResourceGroup, "Microsoft.Web", op.id))
	q.w.Header().Set("Retry-After", strconv.Itoa(e.cfg.RetryAfter))
	q.w.WriteHeader(http.StatusAccepted)
}

// runSwap is App Service's swap. Phase 1: the slot going into production
// (else the source) takes the other slot's sticky settings and restarts
// with them (skipped when applySlotConfig already did it), then is warmed
// up. Phase 2: the two slots exchange their releases, non-sticky settings
// and startup commands at once, and the slot that received the old
// production process restarts with its own sticky settings. If phase 1
// fails, the warmed slot gets its own settings back and nothing else
// changes.
func (e *Emulator) runSwap(op *operation, src, dst *slot) {
	s := src.site
	warm, other := src, dst
	if src.isProduction() {
		warm, other = dst, src
	}
	e.mu.Lock()
	applied, changed := warm.previewSaved == nil || !strings.EqualFold(warm.previewFrom, other.name), false
	if applied {
		changed = e.applyStickyLocked(warm, other)
	}
	e.mu.Unlock()
	if changed {
		e.restartSlot(warm, "swap phase 1: the target slot's sticky settings applied")
	}
	err := e.warmUp(warm, other)
	rec := SwapRecord{App: s.cfg.Name, Source: src.name, Target: dst.name, Time: time.Now().UTC()}
	restartWarm := false
	e.mu.Lock()
	if err == nil {
		a, b := src.inst.Load(), dst.inst.Load()
		src.inst.Store(b)
		dst.inst.Store(a)
		sticky := s.sticky.AppSettingNames
		// The warmed slot's own settings are the ones it had before phase 1.
		wOwn, oOwn := warm.previewSaved, other.settings
		if wOwn == nil {
			wOwn = warm.settings
		}
		warm.settings, other.settings = swapSettings(wOwn, oOwn, sticky), swapSettings(oOwn, wOwn, sticky)
		restartWarm = !maps.Equal(warm.settings, oOwn)
		for _, sl := range []*slot{src, dst} {
			sl.previewSaved, sl.previewFrom = nil, ""
		}
		for _, k := range []string{"appCommandLine", "linuxFxVersion"} {
			src.config[k], dst.config[k] = dst.config[k], src.config[k]
		}
		// Kudu keeps its deployment history in the site's content
		// (/home/site/deployments), which the swap exchanges: each slot's
		// active deployment is the one that put its new content there.
		// (A swap never starts while either slot deploys.)
		if src.busy == nil && dst.busy == nil {
			src.deployments, dst.deployments = dst.deployments, src.deployments
		}
		now := time.Now().UTC()
		st := &slotSwapStatus{TimestampUtc: now.Format(time.RFC3339Nano), SourceSlotName: src.name, DestinationSlotName: dst.name}
		src.lastSwap, dst.lastSwap = st, st
		src.modified, dst.modified = now, now
		rec.Succeeded = true
		rec.Releases = [2]string{b.release, a.release}
	} else {
		if applied && warm.previewSaved != nil {
			warm.settings = warm.previewSaved
			warm.previewSaved, warm.previewFrom = nil, ""
		}
		rec.Error = err.Error()
		rec.Releases = [2]string{src.inst.Load().release, dst.inst.Load().release}
	}
	e.swaps = append(e.swaps, rec)
	e.mu.Unlock()
	if err != nil {
		if changed {
			e.restartSlot(warm, "swap failed: the slot's own settings restored")
		}
		e.mu.Lock()
		s.swapping = false
		e.mu.Unlock()
		e.logf("arm: swap %s <-> %s failed: %v", src.resourceName(), dst.name, err)
		e.finishOperation(op, &opError{Code: "SwapWarmupFailed", Message: "Failed to swap slots: " + err.Error()})
		return
	}
	// The old production process now serves the warmed slot: it restarts
	// with that slot's own sticky settings before the swap reports done.
	if restartWarm {
		e.restartSlot(warm, "swap: the slot's own sticky settings applied")
	}
	e.mu.Lock()
	s.swapping = false
	e.mu.Unlock()
	e.logf("arm: swap %s <-> %s done", src.resourceName(), dst.name)
	e.finishOperation(op, nil)
}

// applyStickyLocked is phase 1 on cur: it keeps its settings aside and
// takes target's values of the sticky names; it reports whether that
// changed them. Caller holds e.mu.
func (e *Emulator) applyStickyLocked(cur, target *slot) bool {
	if cur.previewSaved == nil {
		cur.previewSaved = cloneMap(cur.settings)
	}
	next := cloneMap(cur.previewSaved)
	for _, k := range cur.site.sticky.AppSettingNames {
		for n := range next {
			if strings.EqualFold(n, k) {
				delete(next, n)
			}
		}
		for n, v := range target.settings {
			if strings.EqualFold(n, k) {
				next[n] = v
			}
		}
	}
	changed := !maps.Equal(cur.settings, next)
	cur.settings = next
	cur.previewFrom = target.name
	return changed
}

// swapSettings is what a slot holds after a swap: the other slot's
// settings, except sticky ones, which stay.
func swapSettings(own, other map[string]string, sticky []string) map[string]string {
	out := map[string]string{}
	for k, v := range other {
		if !containsFold(sticky, k) {
			out[k] = v
		}
	}
	for k, v := range own {
		if containsFold(sticky, k) {
			out[k] = v
		}
	}
	return out
}

func containsFold(l []string, s string) bool {
	return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, s) })
}

// warmUp requests WEBSITE_SWAP_WARMUP_PING_PATH (default /) on the slot's
// host and checks WEBSITE_SWAP_WARMUP_PING_STATUSES (default: any status).
// A release that is not running fails warm-up whatever the settings.
func (e *Emulator) warmUp(warm, other *slot) error {
	e.mu.Lock()
	path := firstNonEmpty(warm.settings["WEBSITE_SWAP_WARMUP_PING_PATH"], other.settings["WEBSITE_SWAP_WARMUP_PING_PATH"], "/")
	statuses := firstNonEmpty(warm.settings["WEBSITE_SWAP_WARMUP_PING_STATUSES"], other.settings["WEBSITE_SWAP_WARMUP_PING_STATUSES"])
	in := warm.inst.Load()
	host := warm.host
	e.mu.Unlock()
	if in.dir != "" && !in.running() {
		return fmt.Errorf("the app in slot '%s' is not running (its last start failed)", warm.name)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var status int
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := client.Get("http://" + host + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status, lastErr = resp.StatusCode, nil
			break
		}
		lastErr = err
		time.Sleep(300 * time.Millisecond)
	}
	if lastErr != nil {
		return fmt.Errorf("warm-up request to %s of slot '%s' failed: %v", path, warm.name, lastErr)
	}
	if statuses == "" {
		return nil
	}
	for _, s := range strings.Split(statuses, ",") {
		if strings.TrimSpace(s) == strconv.Itoa(status) {
			return nil
		}
	}
	return fmt.Errorf("warm-up request to %s of slot '%s' returned %d, not one of WEBSITE_SWAP_WARMUP_PING_STATUSES (%s)", path, warm.name, status, statuses)
}

// serveSlotConfigPreview is applySlotConfig (swap with preview, phase 1:
// the current slot takes the target's sticky settings and restarts with
// them) and resetSlotConfig (cancel: the current slot gets its own back
// and restarts). Both answer once the restart is done.
func (e *Emulator) serveSlotConfigPreview(q *armReq, cur *slot, apply bool) {
	s := cur.site
	if !apply {
		// The pending swap is cancelled whichever of its two slots is
		// named (az resets the target slot, e.g. slots/production).
		e.mu.Lock()
		var reset []*slot
		for _, sl := range s.slots {
			if sl.previewSaved != nil && (sl == cur || strings.EqualFold(sl.previewFrom, cur.name)) {
				sl.settings = sl.previewSaved
				sl.previewSaved, sl.previewFrom = nil, ""
				reset = append(reset, sl)
			}
		}
		e.mu.Unlock()
		for _, sl := range reset {
			e.restartSlot(sl, "resetSlotConfig: the slot's own settings restored")
		}
		q.w.WriteHeader(http.StatusOK)
		return
	}
	body, ok := readSlotEntity(q)
	if !ok {
		return
	}
	e.mu.Lock()
	target := s.slots[strings.ToLower(body.TargetSlot)]
	if target == nil || target == cur {
		e.mu.Unlock()
		armError(q.w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Cannot apply slot configuration from slot '%s'.", body.TargetSlot))
		return
	}
	if s.swapping {
		e.mu.Unlock()
		armError(q.w, http.StatusConflict, "Conflict", "Cannot modify this site because another operation is in progress.")
		return
	}
	changed := e.applyStickyLocked(cur, target)
	e.mu.Unlock()
	if changed {
		e.restartSlot(cur, "applySlotConfig: the target slot's sticky settings applied")
	}
	q.w.WriteHeader(http.StatusOK)
}
