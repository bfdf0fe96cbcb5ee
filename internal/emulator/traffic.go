package emulator

import (
	"cmp"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Traffic routing, as App Service's front ends do it for a production host
// whose siteConfig.experiments.rampUpRules is set (the "Testing in
// production" feature): each rule sends reroutePercentage of the requests
// that carry no routing choice to the slot named by actionHostName, and pins
// the client there with the x-ms-routing-name cookie (the slot's name, or
// "self" for production). A request may choose with ?x-ms-routing-name=NAME,
// which also sets the cookie; "self" (or "production") forces production.
//
// Every request a site host serves is also recorded in the telemetry log
// (the Application Insights stand-in reads it, appinsights.go), under the
// role name App Service's agents derive from the host that served it:
// "<app>" for production, "<app>-<slot>" for a slot.

const routingCookie = "x-ms-routing-name"

// rampUpRule is one entry of siteConfig.experiments.rampUpRules.
type rampUpRule struct {
	ActionHostName    string  `json:"actionHostName"`
	ReroutePercentage float64 `json:"reroutePercentage"`
	Name              string  `json:"name"`
}

// rampUpRules reads the production slot's rules from its siteConfig.
func rampUpRules(sl *slot) []rampUpRule {
	exp, _ := sl.config["experiments"].(map[string]any)
	raw, _ := exp["rampUpRules"].([]any)
	var out []rampUpRule
	for _, r := range raw {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		rule := rampUpRule{}
		rule.ActionHostName, _ = m["actionHostName"].(string)
		rule.Name, _ = m["name"].(string)
		switch p := m["reroutePercentage"].(type) {
		case float64:
			rule.ReroutePercentage = p
		case string:
			rule.ReroutePercentage, _ = strconv.ParseFloat(p, 64)
		}
		out = append(out, rule)
	}
	return out
}

// ruleTarget finds the slot a rule sends traffic to: by actionHostName (the
// slot's default host name), else by the rule's name.
func ruleTarget(s *site, rule rampUpRule) *slot {
	for _, n := range s.order {
		sl := s.slots[strings.ToLower(n)]
		if sl.isProduction() {
			continue
		}
		if strings.EqualFold(sl.host, rule.ActionHostName) || strings.EqualFold(azureHostName(sl), rule.ActionHostName) {
			return sl
		}
	}
	if rule.Name != "" {
		if sl := s.slots[strings.ToLower(rule.Name)]; sl != nil && !sl.isProduction() {
			return sl
		}
	}
	return nil
}

// azureHostName is the name the slot would have on Azure, which users may
// copy into actionHostName from documentation.
func azureHostName(sl *slot) string {
	return roleName(sl) + ".azurewebsites.net"
}

// roleName is the cloud_RoleName Application Insights records for requests
// the slot's host serves.
func roleName(sl *slot) string {
	if sl.isProduction() {
		return sl.site.cfg.Name
	}
	return sl.site.cfg.Name + "-" + sl.name
}

// trafficHandler serves a slot's host: production honours rampUpRules;
// every host records what it served.
func (e *Emulator) trafficHandler(sl *slot) http.Handler {
	direct := e.siteHandler(sl)
	var (
		mu      sync.Mutex
		targets = map[*slot]http.Handler{}
	)
	handlerFor := func(t *slot) http.Handler {
		mu.Lock()
		defer mu.Unlock()
		h := targets[t]
		if h == nil {
			h = e.siteHandler(t)
			targets[t] = h
		}
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := sl
		if sl.isProduction() {
			target = e.route(sl, w, r)
		}
		h := direct
		if target != sl {
			h = handlerFor(target)
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		h.ServeHTTP(rec, r)
		e.telemetryLog().add(servedRequest{
			Time:      start.UTC(),
			Component: e.telemetryComponent(target),
			App:       sl.site.cfg.Name,
			Slot:      target.name,
			Role:      roleName(target),
			Path:      r.URL.Path,
			Status:    cmp.Or(rec.status, http.StatusOK),
			Duration:  time.Since(start),
			Release:   target.inst.Load().release,
		})
	})
}

// route picks the slot that serves a request to production's host and sets
// the routing cookie as App Service does.
func (e *Emulator) route(prod *slot, w http.ResponseWriter, r *http.Request) *slot {
	type choice struct {
		pct    float64
		target *slot
	}
	// Slots and siteConfig change under e.mu (ARM writes, slot creation).
	e.mu.Lock()
	var choices []choice
	for _, rule := range rampUpRules(prod) {
		if t := ruleTarget(prod.site, rule); t != nil {
			choices = append(choices, choice{rule.ReroutePercentage, t})
		}
	}
	byName := func(name string) *slot {
		if strings.EqualFold(name, "self") || strings.EqualFold(name, "production") {
			return prod
		}
		return prod.site.slots[strings.ToLower(name)]
	}
	var asked, pinned *slot
	q := r.URL.Query().Get(routingCookie)
	if q != "" {
		asked = byName(q)
	}
	if c, err := r.Cookie(routingCookie); err == nil && c.Value != "" {
		pinned = byName(c.Value)
	}
	e.mu.Unlock()

	switch {
	case asked != nil:
		http.SetCookie(w, &http.Cookie{Name: routingCookie, Value: q, Path: "/", HttpOnly: true})
		return asked
	case pinned != nil:
		// A pinned client stays where it is, even after the rule went
		// (App Service keeps the cookie's choice while the slot exists).
		return pinned
	case len(choices) == 0:
		return prod
	}
	roll := rand.Float64() * 100
	acc := 0.0
	for _, c := range choices {
		acc += c.pct
		if roll < acc {
			http.SetCookie(w, &http.Cookie{Name: routingCookie, Value: c.target.name, Path: "/", HttpOnly: true})
			return c.target
		}
	}
	http.SetCookie(w, &http.Cookie{Name: routingCookie, Value: "self", Path: "/", HttpOnly: true})
	return prod
}

// servedRequest is one served request, as Application Insights' requests
// table would hold it.
type servedRequest struct {
	Time time.Time
	// Component is the Application Insights component (siteKey of its
	// name) the app sends its telemetry to.
	Component string
	App       string // the app whose host received the request
	Slot      string // the slot that served it
	Role      string // cloud_RoleName
	Path      string
	Status    int
	Duration  time.Duration
	Release   string
}

// telemetry is a bounded in-memory log of served requests.
type telemetry struct {
	mu   sync.Mutex
	recs []servedRequest
}

const telemetryCap = 200_000

func (t *telemetry) add(r servedRequest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.recs) >= telemetryCap {
		// Drop the oldest tenth at once so adding stays cheap.
		t.recs = append(t.recs[:0], t.recs[telemetryCap/10:]...)
	}
	t.recs = append(t.recs, r)
}

func (t *telemetry) snapshot() []servedRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]servedRequest(nil), t.recs...)
}

// telemetryLog is the emulator's log of served requests.
func (e *Emulator) telemetryLog() *telemetry { return &e.served }

// telemetryComponent is where the slot's app sends its telemetry: the
// component its APPLICATIONINSIGHTS_CONNECTION_STRING names (several apps,
// e.g. regions, may share one), else the app's own component (as if the
// portal's Application Insights integration were on).
func (e *Emulator) telemetryComponent(sl *slot) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cs := sl.settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]; cs != "" {
		for _, part := range strings.Split(cs, ";") {
			k, v, _ := strings.Cut(part, "=")
			if !strings.EqualFold(strings.TrimSpace(k), "ApplicationId") {
				continue
			}
			for key, s := range e.sites {
				if appInsightsID(s.cfg.ResourceGroup, s.cfg.Name) == strings.ToLower(strings.TrimSpace(v)) {
					return key
				}
			}
		}
	}
	return siteKey(sl.site.cfg.ResourceGroup, sl.site.cfg.Name)
}
