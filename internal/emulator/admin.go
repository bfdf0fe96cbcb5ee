package emulator

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// State is a snapshot of everything a test may want to assert on; the
// admin endpoint GET /_emulator/state returns it as JSON.
type State struct {
	Apps         []AppState      `json:"apps"`
	Swaps        []SwapRecord    `json:"swaps"`
	CDN          []EndpointState `json:"cdn"`
	Faults       []Fault         `json:"faults"`
	TokensIssued int64           `json:"tokensIssued"`
}

// AppState is one web app.
type AppState struct {
	Name           string      `json:"name"`
	ResourceGroup  string      `json:"resourceGroup"`
	StickySettings []string    `json:"stickySettings"`
	Slots          []SlotState `json:"slots"`
}

// SlotState is one slot (production included).
type SlotState struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	SCMURL  string `json:"scmUrl"`
	Release string `json:"release"` // deployment id of the release the host serves ("" = none)
	Running bool   `json:"running"`
	// Unhealthy is "", "all" or the path prefix that answers 503.
	Unhealthy      string            `json:"unhealthy,omitempty"`
	AppSettings    map[string]string `json:"appSettings"`
	AppCommandLine string            `json:"appCommandLine"`
	Deployments    []DeploymentState `json:"deployments"`
	// FailNextDeployment is "build", "runtime" or "none".
	FailNextDeployment string `json:"failNextDeployment"`
}

// DeploymentState is one Kudu deployment.
type DeploymentState struct {
	ID          string    `json:"id"`
	Status      int       `json:"status"`
	BuildStatus string    `json:"buildStatus"`
	Complete    bool      `json:"complete"`
	Active      bool      `json:"active"`
	Received    time.Time `json:"received"`
}

// EndpointState is one CDN endpoint.
type EndpointState struct {
	Profile  string     `json:"profile"`
	Endpoint string     `json:"endpoint"`
	SKU      string     `json:"sku"`
	URL      string     `json:"url"`
	Cached   []string   `json:"cached"`
	Purges   [][]string `json:"purges"`
}

// State returns a snapshot of the emulator.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := State{Swaps: append([]SwapRecord{}, e.swaps...), Faults: e.faults.Pending(), TokensIssued: e.tokens.Load()}
	if st.Faults == nil {
		st.Faults = []Fault{}
	}
	keys := sortedKeys(e.sites)
	for _, k := range keys {
		s := e.sites[k]
		as := AppState{Name: s.cfg.Name, ResourceGroup: s.cfg.ResourceGroup, StickySettings: append([]string{}, s.sticky.AppSettingNames...)}
		for _, n := range s.order {
			sl := s.slots[strings.ToLower(n)]
			in := sl.inst.Load()
			ss := SlotState{
				Name: sl.name, URL: "http://" + sl.host, SCMURL: "http://" + sl.scmHost, Release: in.release, Running: in.running(),
				AppSettings: maps.Clone(sl.settings), AppCommandLine: sl.appCommandLine(), Deployments: []DeploymentState{},
				FailNextDeployment: sl.failNext.String(),
			}
			switch in.unhealthy.Load() {
			case 1:
				ss.Unhealthy = "all"
			case 2:
				if p := in.sickPath.Load(); p != nil {
					ss.Unhealthy = *p
				}
			}
			for _, d := range sl.deployments {
				ss.Deployments = append(ss.Deployments, DeploymentState{ID: d.ID, Status: d.Status, BuildStatus: d.BuildStatus, Complete: d.Complete, Active: d.Active, Received: d.Received})
			}
			as.Slots = append(as.Slots, ss)
		}
		st.Apps = append(st.Apps, as)
	}
	for _, k := range sortedKeys(e.profiles) {
		p := e.profiles[k]
		for _, ep := range p.endpoints {
			ep.mu.Lock()
			purges := append([][]string{}, ep.purges...)
			ep.mu.Unlock()
			st.CDN = append(st.CDN, EndpointState{Profile: p.cfg.Name, Endpoint: ep.cfg.Name, SKU: p.cfg.SKU, URL: "http://" + ep.host, Cached: ep.cachedPaths(), Purges: purges})
		}
	}
	sort.SliceStable(st.CDN, func(i, j int) bool { return st.CDN[i].Profile < st.CDN[j].Profile })
	return st
}

// Faults returns the fault set (the Go side of POST /_emulator/faults).
func (e *Emulator) Faults() *Faults { return e.faults }

// FailNextDeployment makes the next deployment to app/slot fail at build
// (BuildFailed) or at runtime start (RuntimeFailed); NoFailure clears it.
func (e *Emulator) FailNextDeployment(app, slotName string, at FailAt) error {
	sl := e.findSlot(app, slotName)
	if sl == nil {
		return fmt.Errorf("no slot %q of app %q", slotName, app)
	}
	e.mu.Lock()
	sl.failNext = at
	e.mu.Unlock()
	return nil
}

// SetUnhealthy makes the release the slot holds answer 503 on every path
// (or heals it). The mark belongs to the release: it moves with it on a
// swap, and a new deployment to the slot starts healthy.
func (e *Emulator) SetUnhealthy(app, slotName string, unhealthy bool) error {
	sl := e.findSlot(app, slotName)
	if sl == nil {
		return fmt.Errorf("no slot %q of app %q", slotName, app)
	}
	in := sl.inst.Load()
	if unhealthy {
		in.unhealthy.Store(1)
	} else {
		in.unhealthy.Store(0)
	}
	return nil
}

// SetUnhealthyPath makes the slot's release answer 503 only on paths under
// prefix, e.g. its health check path ("" heals it).
func (e *Emulator) SetUnhealthyPath(app, slotName, prefix string) error {
	sl := e.findSlot(app, slotName)
	if sl == nil {
		return fmt.Errorf("no slot %q of app %q", slotName, app)
	}
	in := sl.inst.Load()
	if prefix == "" {
		in.unhealthy.Store(0)
		return nil
	}
	in.sickPath.Store(&prefix)
	in.unhealthy.Store(2)
	return nil
}

// AdminSecretEnv names the export-block variable that carries the admin
// secret; every admin request must send it as "Authorization: Bearer <secret>".
const AdminSecretEnv = "DJDEPLOY_EMULATOR_ADMIN_SECRET"

// adminHandler serves /_emulator/. The admin API can read every app setting
// and token and change what the apps run, so it trusts nothing about being on
// loopback alone (adminGuard): a per-run secret, a loopback Host (a web page
// reaching 127.0.0.1 by DNS rebinding sends its own name) and JSON bodies only
// (a cross-site form can send text/plain but not application/json without a
// preflight the emulator never answers).
//
//	GET    /_emulator/state                 State as JSON
//	GET    /_emulator/env                   the export block as JSON
//	GET    /_emulator/faults                pending faults
//	POST   /_emulator/faults                add a Fault (or a JSON list of them)
//	DELETE /_emulator/faults                clear the faults
//	POST   /_emulator/deployment-faults     {"app","slot","at":"build|runtime|none"}
//	POST   /_emulator/unhealthy             {"app","slot","unhealthy":true} or {"app","slot","path":"/health"}
//	GET    /_emulator/requests?method=POST&path=*/slotsswap   {"count":N}
//	DELETE /_emulator/requests              forget the counted requests
//	POST   /_emulator/posture               a Posture (httpsOnly, basic auth, alwaysOn, ...; posture.go)
//	PUT    /_emulator/databases/{server}/firewall-rules   replace a database server's firewall rules
func (e *Emulator) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_emulator/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.State()) })
	mux.HandleFunc("GET /_emulator/env", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.Env()) })
	mux.HandleFunc("GET /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		f := e.faults.Pending()
		if f == nil {
			f = []Fault{}
		}
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		e.faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			http.Error(w, "want a JSON fault or list of faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		var list []adminFault
		if strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
			if err := json.Unmarshal(raw, &list); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		} else {
			var one adminFault
			if err := json.Unmarshal(raw, &one); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			list = append(list, one)
		}
		for _, f := range list {
			x, err := f.fault()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			e.faults.Add(x)
		}
		writeJSON(w, http.StatusCreated, e.faults.Pending())
	})
	mux.HandleFunc("POST /_emulator/deployment-faults", func(w http.ResponseWriter, r *http.Request) {
		var b struct{ App, Slot, At string }
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		at := map[string]FailAt{"build": AtBuild, "runtime": AtRuntime, "none": NoFailure, "": NoFailure}
		f, ok := at[strings.ToLower(b.At)]
		if !ok {
			http.Error(w, `at must be "build", "runtime" or "none"`, http.StatusBadRequest)
			return
		}
		if err := e.FailNextDeployment(b.App, b.Slot, f); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/unhealthy", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			App, Slot, Path string
			Unhealthy       bool
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var err error
		if b.Path != "" {
			err = e.SetUnhealthyPath(b.App, b.Slot, b.Path)
		} else {
			err = e.SetUnhealthy(b.App, b.Slot, b.Unhealthy)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"count": e.Requests(r.URL.Query().Get("method"), firstNonEmpty(r.URL.Query().Get("path"), "*"))})
	})
	mux.HandleFunc("DELETE /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		e.ResetRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	e.postureAdmin(mux)
	return e.adminGuard(mux)
}

// adminGuard refuses admin requests that lack the run's secret, name a
// non-loopback Host, or carry a body that is not application/json.
func (e *Emulator) adminGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "the emulator's admin API answers only to a loopback Host (127.0.0.1, ::1 or localhost)", http.StatusForbidden)
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(e.adminSecret)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="djdeploy-emulator-admin"`)
			http.Error(w, "the emulator's admin API needs \"Authorization: Bearer $"+AdminSecretEnv+"\" (the value is in the export block)", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodDelete {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				http.Error(w, "admin requests with a body must be Content-Type: application/json", http.StatusUnsupportedMediaType)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's loopback:
// localhost or a loopback IP, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminFault is a Fault in JSON with delay as a duration string ("2s").
type adminFault struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	Status     int    `json:"status"`
	RetryAfter int    `json:"retryAfter"`
	Drop       bool   `json:"drop"`
	Delay      string `json:"delay"`
	Count      int    `json:"count"`
	Host       string `json:"host"`
}

func (a adminFault) fault() (Fault, error) {
	f := Fault{Method: a.Method, Path: a.Path, Status: a.Status, RetryAfter: a.RetryAfter, Drop: a.Drop, Count: a.Count, Host: a.Host}
	if a.Delay != "" {
		d, err := time.ParseDuration(a.Delay)
		if err != nil {
			return f, fmt.Errorf("bad delay %q: %v", a.Delay, err)
		}
		f.Delay = d
	}
	if f.Path == "" {
		return f, fmt.Errorf("a fault needs a path pattern, e.g. \"*/slotsswap\"")
	}
	if f.Status == 0 && !f.Drop && f.Delay == 0 {
		return f, fmt.Errorf("a fault needs status, drop or delay")
	}
	return f, nil
}
