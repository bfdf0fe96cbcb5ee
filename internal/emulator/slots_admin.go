package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Creating and deleting deployment slots, as Microsoft.Web's REST spec
// describes them (WebApps_CreateOrUpdateSlot, WebApps_DeleteSlot):
//
//	PUT    .../sites/{name}/slots/{slot}   body: Site (location, properties)
//	DELETE .../sites/{name}/slots/{slot}   200, or 204 when there was none
//
// A PUT whose properties.cloningInfo.sourceWebAppId names a slot of the same
// app (".../sites/{name}" for production, ".../sites/{name}/slots/{s}")
// clones that slot's configuration: siteConfig, app settings and connection
// strings, then cloningInfo.appSettingsOverrides on top ("if specified, these
// settings override the settings cloned from source app"). properties.
// siteConfig given in the body is applied after the clone; its appSettings
// and connectionStrings arrays become the slot's settings. The plan's tier
// bounds how many deployment slots an app may have (App Service limits:
// Free, Shared and Basic none, Standard 5, Premium and Isolated 20); one
// more is refused with 400 and nothing is created.

// SlotLimit is the number of deployment slots (production not counted) a
// plan tier allows.
func SlotLimit(tier string) int {
	t := strings.ToLower(tier)
	switch {
	case t == "free", t == "shared", t == "basic", t == "dynamic":
		return 0
	case t == "standard":
		return 5
	case strings.HasPrefix(t, "premium"), strings.HasPrefix(t, "isolated"):
		return 20
	}
	return 5
}

// slotNameRe is what the portal accepts for a slot name: letters, digits and
// hyphens; the site name, a hyphen and the slot name together are at most
// 59 characters (its host name label).
var slotNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// adminSlots remembers the hosts of slots created through ARM, so a delete
// can close them.
var adminSlots sync.Map // *slot -> *adminSlot

type adminSlot struct {
	listeners []net.Listener
	gone      atomic.Bool
}

// unlessGone answers as App Service's front end does for a host whose site
// is gone (404 "Web Site not found"), also on connections kept alive from
// before the delete.
func (a *adminSlot) unlessGone(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.gone.Load() {
			w.Header().Set("Connection", "close")
			http.Error(w, "404 Web Site not found.", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveSlotAdmin handles PUT and DELETE on .../sites/{name}/slots/{slot}.
func (e *Emulator) serveSlotAdmin(q *armReq, s *site, name string) {
	switch q.r.Method {
	case http.MethodPut:
		e.createSlot(q, s, name)
	case http.MethodDelete:
		e.deleteSlot(q, s, name)
	default:
		e.methodNotAllowed(q)
	}
}

type slotEnvelope struct {
	Location   string `json:"location"`
	Properties struct {
		ServerFarmID string         `json:"serverFarmId"`
		SiteConfig   map[string]any `json:"siteConfig"`
		CloningInfo  *struct {
			SourceWebAppID       string            `json:"sourceWebAppId"`
			AppSettingsOverrides map[string]string `json:"appSettingsOverrides"`
		} `json:"cloningInfo"`
	} `json:"properties"`
}

func (e *Emulator) createSlot(q *armReq, s *site, name string) {
	var body slotEnvelope
	if err := json.NewDecoder(q.r.Body).Decode(&body); err != nil {
		armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
		return
	}
	if strings.EqualFold(name, "production") || !slotNameRe.MatchString(name) || len(s.cfg.Name)+1+len(name) > 59 {
		armError(q.w, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("The slot name '%s' is invalid: use letters, digits and hyphens; the site name and slot name combined must be fewer than 60 characters.", name))
		return
	}
	e.mu.Lock()
	if existing := s.slots[strings.ToLower(name)]; existing != nil {
		// CreateOrUpdate on an existing slot: apply the given siteConfig.
		maps.Copy(existing.config, body.Properties.SiteConfig)
		existing.modified = time.Now().UTC()
		out := e.siteJSON(existing)
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, out)
		return
	}
	tier := s.cfg.Plan.Tier
	if limit := SlotLimit(tier); len(s.order)-1 >= limit {
		e.mu.Unlock()
		armError(q.w, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Cannot create more than %d deployment slots for site '%s' in the %s tier (plan %s). Scale the App Service plan up, or delete a slot.", limit, s.cfg.Name, tier, s.cfg.Plan.Name))
		return
	}
	var src *slot
	if ci := body.Properties.CloningInfo; ci != nil && ci.SourceWebAppID != "" {
		for _, sl := range s.slots {
			if strings.EqualFold(e.slotID(sl), strings.TrimRight(ci.SourceWebAppID, "/")) {
				src = sl
			}
		}
		if src == nil {
			e.mu.Unlock()
			armError(q.w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The source web app '%s' of cloningInfo was not found among the slots of site '%s'.", ci.SourceWebAppID, s.cfg.Name))
			return
		}
	}
	e.mu.Unlock()

	sl := &slot{site: s, name: name, settings: map[string]string{}, modified: time.Now().UTC()}
	sl.config = defaultSiteConfig(s.cfg)
	applyPosture(sl, s.cfg)
	// A new slot starts empty, not with the app's configured settings: those
	// are what the resources file gave the slots it created.
	sl.connStrings = map[string]ConnStringConfig{}
	if src != nil {
		e.mu.Lock()
		sl.config = maps.Clone(src.config)
		maps.Copy(sl.settings, src.settings)
		maps.Copy(sl.connStrings, src.connStrings)
		sl.httpsOnly = src.httpsOnly
		e.mu.Unlock()
		maps.Copy(sl.settings, body.Properties.CloningInfo.AppSettingsOverrides)
	}
	// siteConfig.appSettings and .connectionStrings (NameValuePair and
	// ConnStringInfo arrays) set the slot's settings, as an ARM template's
	// site resource does; the rest is the site configuration.
	cfg := maps.Clone(body.Properties.SiteConfig)
	if raw, ok := cfg["appSettings"]; ok {
		delete(cfg, "appSettings")
		for _, it := range asList(raw) {
			if n, _ := it["name"].(string); n != "" {
				v, _ := it["value"].(string)
				sl.settings[n] = v
			}
		}
	}
	if raw, ok := cfg["connectionStrings"]; ok {
		delete(cfg, "connectionStrings")
		for _, it := range asList(raw) {
			if n, _ := it["name"].(string); n != "" {
				v, _ := it["connectionString"].(string)
				typ, _ := it["type"].(string)
				if typ == "" {
					typ = "Custom"
				}
				sl.connStrings[n] = ConnStringConfig{Value: v, Type: typ}
			}
		}
	}
	maps.Copy(sl.config, cfg)
	sl.dir = filepath.Join(e.stateDir, "apps", s.cfg.Name, name)
	if err := os.MkdirAll(sl.dir, 0o755); err != nil {
		armError(q.w, http.StatusInternalServerError, "InternalServerError", err.Error())
		return
	}
	sl.inst.Store(emptyInstance())
	hl, err := listenLoopback(0)
	if err != nil {
		armError(q.w, http.StatusInternalServerError, "InternalServerError", err.Error())
		return
	}
	kl, err := listenLoopback(0)
	if err != nil {
		hl.Close()
		armError(q.w, http.StatusInternalServerError, "InternalServerError", err.Error())
		return
	}
	sl.host, sl.scmHost = hl.Addr().String(), kl.Addr().String()
	as := &adminSlot{listeners: []net.Listener{hl, kl}}
	e.serve(hl, "site", as.unlessGone(e.siteHandler(sl)))
	e.serve(kl, "scm", as.unlessGone(e.requireBearer(true, e.kuduHandler(sl))))
	adminSlots.Store(sl, as)

	e.mu.Lock()
	if s.slots[strings.ToLower(name)] != nil || len(s.order)-1 >= SlotLimit(tier) {
		// Another PUT won the race: answer as if this one came second.
		e.mu.Unlock()
		hl.Close()
		kl.Close()
		adminSlots.Delete(sl)
		e.createSlot(q, s, name)
		return
	}
	s.slots[strings.ToLower(name)] = sl
	s.order = append(s.order, name)
	out := e.siteJSON(sl)
	e.mu.Unlock()
	writeJSON(q.w, http.StatusOK, out)
}

func (e *Emulator) deleteSlot(q *armReq, s *site, name string) {
	e.mu.Lock()
	sl := s.slots[strings.ToLower(name)]
	if sl == nil || sl.isProduction() {
		e.mu.Unlock()
		q.w.WriteHeader(http.StatusNoContent)
		return
	}
	if s.swapping {
		e.mu.Unlock()
		armError(q.w, http.StatusConflict, "Conflict", fmt.Sprintf("Cannot delete slot '%s' of site '%s' while a swap operation is in progress.", name, s.cfg.Name))
		return
	}
	delete(s.slots, strings.ToLower(name))
	for i, n := range s.order {
		if strings.EqualFold(n, name) {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	insts := append([]*instance{sl.inst.Load()}, sl.starting...)
	e.mu.Unlock()
	for _, in := range insts {
		if in != nil {
			in.stop()
		}
	}
	if v, ok := adminSlots.LoadAndDelete(sl); ok {
		as := v.(*adminSlot)
		as.gone.Store(true)
		for _, l := range as.listeners {
			l.Close()
		}
	}
	q.w.WriteHeader(http.StatusOK)
}

func asList(v any) []map[string]any {
	var out []map[string]any
	items, _ := v.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
