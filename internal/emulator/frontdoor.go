package emulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Front Door origin groups, written from Microsoft.Cdn's AFDOriginGroups and
// AFDOrigins REST contracts: GET the groups and origins of a profile, PATCH
// or PUT an origin's enabledState, weight and priority (answered at once,
// 200 with the resource). The profile's endpoints route every path outside
// the static prefix to the enabled origins of the lowest priority, chosen
// by weight, as Front Door balances an origin group; with none enabled they
// answer 503. Each routed request is logged (FrontDoorLog), and so is each
// change of an origin's state (OriginChanges), so tests can check when an
// origin was out of rotation and who it served.

type afdOrigin struct {
	group    string
	cfg      OriginConfig
	weight   int
	priority int
	enabled  bool
}

// FrontDoorRecord is one request a Front Door endpoint sent to an origin.
type FrontDoorRecord struct {
	At     time.Time // when the origin was chosen
	Origin string    // group/origin
	App    string
	Status int
}

// OriginChange is one change of an origin's enabledState.
type OriginChange struct {
	At      time.Time
	Origin  string // group/origin
	Enabled bool
}

type frontDoorState struct {
	mu      sync.Mutex
	origins map[string][]*afdOrigin // profile key -> origins
	log     []FrontDoorRecord
	changes []OriginChange
}

func (e *Emulator) frontDoor() *frontDoorState {
	st := &e.afd
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.origins == nil {
		st.origins = map[string][]*afdOrigin{}
		for _, pc := range e.res.CDN {
			if !isFrontDoorSKU(pc.SKU) {
				continue
			}
			for _, g := range pc.OriginGroups {
				for _, o := range g.Origins {
					st.origins[siteKey(pc.ResourceGroup, pc.Name)] = append(st.origins[siteKey(pc.ResourceGroup, pc.Name)], &afdOrigin{
						group: g.Name, cfg: o, weight: cmpOr(o.Weight, 50), priority: cmpOr(o.Priority, 1), enabled: !o.Disabled})
				}
			}
		}
	}
	return st
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// FrontDoorLog is what the Front Door endpoints sent to origins.
func (e *Emulator) FrontDoorLog() []FrontDoorRecord {
	st := e.frontDoor()
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]FrontDoorRecord(nil), st.log...)
}

// OriginChanges is every change of an origin's enabledState, in order.
func (e *Emulator) OriginChanges() []OriginChange {
	st := e.frontDoor()
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]OriginChange(nil), st.changes...)
}

func (e *Emulator) originHost(o *afdOrigin) string {
	if sl := e.findSlot(o.cfg.App, "production"); sl != nil {
		return sl.host
	}
	return ""
}

func (e *Emulator) originJSON(p *profile, o *afdOrigin) map[string]any {
	state := "Enabled"
	if !o.enabled {
		state = "Disabled"
	}
	host := e.originHost(o)
	return map[string]any{
		"id":   e.profileID(p) + "/origingroups/" + o.group + "/origins/" + o.cfg.Name,
		"name": o.cfg.Name,
		"type": "Microsoft.Cdn/profiles/origingroups/origins",
		"properties": map[string]any{
			"originGroupName":             o.group,
			"hostName":                    host,
			"httpPort":                    80,
			"httpsPort":                   443,
			"originHostHeader":            host,
			"priority":                    o.priority,
			"weight":                      o.weight,
			"enabledState":                state,
			"enforceCertificateNameCheck": true,
			"provisioningState":           "Succeeded",
			"deploymentStatus":            "NotStarted",
		},
	}
}

// serveOriginGroups serves .../profiles/{p}/originGroups[/{g}[/origins[/{o}]]].
func (e *Emulator) serveOriginGroups(q *armReq, p *profile, sub []string) {
	st := e.frontDoor()
	key := siteKey(p.cfg.ResourceGroup, p.cfg.Name)
	st.mu.Lock()
	defer st.mu.Unlock()
	origins := st.origins[key]
	groups := []string{}
	seen := map[string]bool{}
	for _, o := range origins {
		if !seen[strings.ToLower(o.group)] {
			seen[strings.ToLower(o.group)] = true
			groups = append(groups, o.group)
		}
	}
	groupJSON := func(g string) map[string]any {
		return map[string]any{"id": e.profileID(p) + "/origingroups/" + g, "name": g, "type": "Microsoft.Cdn/profiles/origingroups",
			"properties": map[string]any{"loadBalancingSettings": map[string]any{"sampleSize": 4, "successfulSamplesRequired": 3, "additionalLatencyInMilliseconds": 50},
				"sessionAffinityState": "Disabled", "provisioningState": "Succeeded", "deploymentStatus": "NotStarted"}}
	}
	m := q.r.Method
	if len(sub) == 1 {
		if m != http.MethodGet {
			e.methodNotAllowed(q)
			return
		}
		list := []any{}
		for _, g := range groups {
			list = append(list, groupJSON(g))
		}
		writeJSON(q.w, http.StatusOK, map[string]any{"value": list})
		return
	}
	group := ""
	for _, g := range groups {
		if strings.EqualFold(g, q.rest[3]) {
			group = g
		}
	}
	if group == "" {
		notFound(q.w, q.rg, "Microsoft.Cdn/profiles/originGroups", p.cfg.Name+"/"+q.rest[3])
		return
	}
	switch {
	case len(sub) == 2 && m == http.MethodGet:
		writeJSON(q.w, http.StatusOK, groupJSON(group))
	case len(sub) == 3 && sub[2] == "origins" && m == http.MethodGet:
		list := []any{}
		for _, o := range origins {
			if o.group == group {
				list = append(list, e.originJSON(p, o))
			}
		}
		writeJSON(q.w, http.StatusOK, map[string]any{"value": list})
	case len(sub) == 4 && sub[2] == "origins":
		var o *afdOrigin
		for _, x := range origins {
			if x.group == group && strings.EqualFold(x.cfg.Name, q.rest[5]) {
				o = x
			}
		}
		if o == nil {
			notFound(q.w, q.rg, "Microsoft.Cdn/profiles/originGroups/origins", p.cfg.Name+"/"+group+"/"+q.rest[5])
			return
		}
		switch m {
		case http.MethodGet:
			writeJSON(q.w, http.StatusOK, e.originJSON(p, o))
		case http.MethodPatch, http.MethodPut:
			var body struct {
				Properties struct {
					EnabledState *string `json:"enabledState"`
					Weight       *int    `json:"weight"`
					Priority     *int    `json:"priority"`
				} `json:"properties"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(q.w, q.r.Body, 1<<20)).Decode(&body); err != nil {
				armError(q.w, http.StatusBadRequest, "BadRequest", "The request content was invalid: "+err.Error())
				return
			}
			pr := body.Properties
			if pr.EnabledState != nil && *pr.EnabledState != "Enabled" && *pr.EnabledState != "Disabled" {
				armError(q.w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("enabledState must be Enabled or Disabled, not %q.", *pr.EnabledState))
				return
			}
			if pr.Weight != nil && (*pr.Weight < 1 || *pr.Weight > 1000) {
				armError(q.w, http.StatusBadRequest, "BadRequest", "weight must be between 1 and 1000.")
				return
			}
			if pr.Priority != nil && (*pr.Priority < 1 || *pr.Priority > 5) {
				armError(q.w, http.StatusBadRequest, "BadRequest", "priority must be between 1 and 5.")
				return
			}
			if pr.EnabledState != nil {
				en := *pr.EnabledState == "Enabled"
				if en != o.enabled {
					st.changes = append(st.changes, OriginChange{At: time.Now(), Origin: group + "/" + o.cfg.Name, Enabled: en})
					e.logf("frontdoor: origin %s/%s %s", group, o.cfg.Name, *pr.EnabledState)
				}
				o.enabled = en
			}
			if pr.Weight != nil {
				o.weight = *pr.Weight
			}
			if pr.Priority != nil {
				o.priority = *pr.Priority
			}
			writeJSON(q.w, http.StatusOK, e.originJSON(p, o))
		default:
			e.methodNotAllowed(q)
		}
	default:
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
	}
}

// routeToOrigin sends a request for a path outside the static prefix to one
// of the profile's origins; false means the path is a static file (or the
// profile has no origin groups) and the blob origin serves it.
func (e *Emulator) routeToOrigin(ep *cdnEndpoint, w http.ResponseWriter, r *http.Request) bool {
	st := e.frontDoor()
	key := siteKey(ep.profile.cfg.ResourceGroup, ep.profile.cfg.Name)
	st.mu.Lock()
	origins := st.origins[key]
	if len(origins) == 0 || !ep.profile.afd || (e.res.StaticPrefix != "" && strings.HasPrefix(r.URL.Path, "/"+e.res.StaticPrefix)) {
		st.mu.Unlock()
		return false
	}
	best := 0
	var pool []*afdOrigin
	for _, o := range origins {
		if !o.enabled {
			continue
		}
		if best == 0 || o.priority < best {
			best, pool = o.priority, nil
		}
		if o.priority == best {
			pool = append(pool, o)
		}
	}
	var chosen *afdOrigin
	total := 0
	for _, o := range pool {
		total += o.weight
	}
	if total > 0 {
		roll := rand.IntN(total)
		for _, o := range pool {
			if roll < o.weight {
				chosen = o
				break
			}
			roll -= o.weight
		}
	}
	st.mu.Unlock()
	if chosen == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "<h2>Our services aren't available right now</h2><p>No origin of this Front Door route is enabled.</p>")
		return true
	}
	host := e.originHost(chosen)
	at := time.Now() // when Front Door chose the origin (the request may end later)
	rec := &statusRecorder{ResponseWriter: w}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	proxy.ServeHTTP(rec, r)
	st.mu.Lock()
	st.log = append(st.log, FrontDoorRecord{At: at, Origin: chosen.group + "/" + chosen.cfg.Name, App: chosen.cfg.App, Status: max(rec.status, 200)})
	if len(st.log) > 100_000 {
		st.log = st.log[len(st.log)-50_000:]
	}
	st.mu.Unlock()
	return true
}
