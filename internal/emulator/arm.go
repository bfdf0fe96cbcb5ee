package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"
	"time"
)

// armError writes ARM's error body, {"error":{"code","message"}}, with the
// code also in x-ms-error-code (azcore reads either).
func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// notFound is ARM's 404 for a resource. A nested resource is named as ARM
// names it, each type followed by its name (Microsoft.Web/sites/app/slots/
// staging/deploymentStatus/id), when typ has one segment per name.
func notFound(w http.ResponseWriter, rg, typ, name string) {
	armError(w, http.StatusNotFound, "ResourceNotFound",
		fmt.Sprintf("The Resource '%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", resourcePath(typ, name), rg))
}

func resourcePath(typ, name string) string {
	types, names := strings.Split(typ, "/"), strings.Split(name, "/")
	if len(types) < 3 || len(types)-1 != len(names) {
		return typ + "/" + name
	}
	out := types[0]
	for i, n := range names {
		out += "/" + types[i+1] + "/" + n
	}
	return out
}

// armRoot serves ARM (behind the bearer check) and the admin endpoints.
func (e *Emulator) armRoot() http.Handler {
	arm := e.requireBearer(false, http.HandlerFunc(e.serveARM))
	admin := e.adminHandler()
	query := e.queryAPIHandler()
	return withRequestIDs(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_emulator/") {
			admin.ServeHTTP(w, r)
			return
		}
		if strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, e.cfg.ARMBasePath), "/") == "/metadata/endpoints" {
			e.serveMetadata(w, r) // anonymous, as on Azure
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/apps/") {
			query.ServeHTTP(w, r)
			return
		}
		arm.ServeHTTP(w, r)
	}))
}

// armReq is a parsed ARM request path.
type armReq struct {
	w          http.ResponseWriter
	r          *http.Request
	sub, rg    string
	namespace  string   // lower: microsoft.web, microsoft.cdn
	rest       []string // path segments after the namespace, original case
	lrest      []string // lower-case rest
	apiVersion string
}

func (e *Emulator) serveARM(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if e.cfg.ARMBasePath != "" {
		var ok bool
		if p, ok = strings.CutPrefix(p, e.cfg.ARMBasePath); !ok {
			armError(w, http.StatusNotFound, "NotFound", "No route matches "+r.URL.Path)
			return
		}
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	ls := make([]string, len(segs))
	for i, s := range segs {
		ls[i] = strings.ToLower(s)
	}
	if len(segs) < 1 || ls[0] != "subscriptions" {
		armError(w, http.StatusNotFound, "NotFound", "No route matches "+r.URL.Path)
		return
	}
	q := &armReq{w: w, r: r, apiVersion: r.URL.Query().Get("api-version")}
	if q.apiVersion == "" {
		armError(w, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return
	}
	if len(segs) <= 2 || (len(segs) <= 4 && ls[2] == "resourcegroups") {
		if e.checkAPIVersion(w, "", "", q.apiVersion) {
			e.serveSubscriptionScope(w, r, segs, ls)
		}
		return
	}
	q.sub = segs[1]
	if !strings.EqualFold(q.sub, e.res.Subscription) {
		armError(w, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", q.sub))
		return
	}
	switch {
	case len(segs) >= 6 && ls[2] == "resourcegroups" && ls[4] == "providers":
		q.rg, q.namespace, q.rest, q.lrest = segs[3], ls[5], segs[6:], ls[6:]
	case len(segs) >= 4 && ls[2] == "providers":
		q.namespace, q.rest, q.lrest = ls[3], segs[4:], ls[4:]
	default:
		armError(w, http.StatusNotFound, "NotFound", "No route matches "+r.URL.Path)
		return
	}
	typ := ""
	if len(q.lrest) > 0 {
		typ = q.rest[0]
	}
	if !e.checkAPIVersion(w, q.namespace, typ, q.apiVersion) {
		return
	}
	if len(q.lrest) >= 2 && q.lrest[0] == "operationresults" {
		e.serveOperation(q, q.rest[1])
		return
	}
	if q.rg != "" && !e.knownGroup(q.rg) {
		armError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", q.rg))
		return
	}
	switch q.namespace {
	case "microsoft.web":
		e.serveWeb(q)
	case "microsoft.cdn":
		e.serveCDN(q)
	case "microsoft.insights":
		e.serveInsights(q)
	case "microsoft.dbforpostgresql", "microsoft.dbformysql":
		e.serveDB(q)
	default:
		armError(w, http.StatusNotFound, "NoRegisteredProviderFound", fmt.Sprintf("No registered resource provider found for namespace '%s'.", q.namespace))
	}
}

func (e *Emulator) knownGroup(rg string) bool {
	for _, a := range e.res.Apps {
		if strings.EqualFold(a.ResourceGroup, rg) {
			return true
		}
	}
	for _, p := range e.res.CDN {
		if strings.EqualFold(p.ResourceGroup, rg) {
			return true
		}
	}
	return e.knownDBGroup(rg)
}

func (e *Emulator) methodNotAllowed(q *armReq) {
	armError(q.w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The requested resource does not support http method '%s'.", q.r.Method))
}

func (e *Emulator) siteID(s *site) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Web/sites/%s", e.res.Subscription, s.cfg.ResourceGroup, s.cfg.Name)
}

func (e *Emulator) slotID(sl *slot) string {
	if sl.isProduction() {
		return e.siteID(sl.site)
	}
	return e.siteID(sl.site) + "/slots/" + sl.name
}

func (e *Emulator) planID(s *site) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Web/serverfarms/%s", e.res.Subscription, s.cfg.ResourceGroup, s.cfg.Plan.Name)
}

func slotType(sl *slot, suffix string) string {
	if sl.isProduction() {
		return "Microsoft.Web/sites" + suffix
	}
	return "Microsoft.Web/sites/slots" + suffix
}

func (e *Emulator) serveWeb(q *armReq) {
	if len(q.lrest) == 1 && q.lrest[0] == "sites" {
		e.serveSiteList(q)
		return
	}
	if len(q.lrest) < 2 {
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
		return
	}
	switch q.lrest[0] {
	case "serverfarms":
		e.servePlan(q, q.rest[1])
		return
	case "sites":
	default:
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
		return
	}
	e.mu.Lock()
	s := e.sites[siteKey(q.rg, q.rest[1])]
	e.mu.Unlock()
	if s == nil {
		notFound(q.w, q.rg, "Microsoft.Web/sites", q.rest[1])
		return
	}
	sub, lsub := q.rest[2:], q.lrest[2:]
	sl := s.slots["production"]
	if len(lsub) >= 1 && lsub[0] == "slots" {
		if len(lsub) == 1 {
			if q.r.Method != http.MethodGet {
				e.methodNotAllowed(q)
				return
			}
			var list []any
			for _, n := range s.order[1:] {
				list = append(list, e.siteJSON(s.slots[strings.ToLower(n)]))
			}
			writeJSON(q.w, http.StatusOK, map[string]any{"value": list, "nextLink": nil})
			return
		}
		// slots/production names the production site, as on App Service
		// (az webapp deployment slot swap --action reset sends it).
		if len(lsub) == 2 && lsub[1] != "production" && (q.r.Method == http.MethodPut || q.r.Method == http.MethodDelete) {
			e.serveSlotAdmin(q, s, sub[1]) // slots_admin.go
			return
		}
		e.mu.Lock()
		sl = s.slots[lsub[1]]
		e.mu.Unlock()
		if sl == nil {
			notFound(q.w, q.rg, "Microsoft.Web/sites", s.cfg.Name+"/slots/"+sub[1])
			return
		}
		sub, lsub = sub[2:], lsub[2:]
	}
	m := q.r.Method
	key := strings.Join(lsub, "/")
	switch {
	case key == "" && m == http.MethodGet:
		e.mu.Lock()
		body := e.siteJSON(sl)
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, body)
	case key == "config/web" && m == http.MethodGet:
		e.mu.Lock()
		body := e.configJSON(sl)
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, body)
	case key == "" && (m == http.MethodPut || m == http.MethodPatch):
		e.updateSite(q, sl)
	case key == "restart" && m == http.MethodPost:
		e.serveRestart(q, sl)
	case key == "publishxml" && m == http.MethodPost:
		e.servePublishXML(q, sl)
	case key == "config/publishingcredentials/list" && m == http.MethodPost:
		e.servePublishingCredentials(q, sl)
	case key == "config/web" && (m == http.MethodPatch || m == http.MethodPut):
		e.updateConfig(q, sl)
	case key == "config/appsettings/list" && m == http.MethodPost:
		e.mu.Lock()
		body := e.appSettingsJSON(sl)
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, body)
	case key == "config/appsettings" && m == http.MethodPut:
		e.updateAppSettings(q, sl)
	case key == "config/slotconfignames" && sl.isProduction() && (m == http.MethodGet || m == http.MethodPut):
		e.serveSlotConfigNames(q, s)
	case len(lsub) == 2 && lsub[0] == "basicpublishingcredentialspolicies" && (lsub[1] == "scm" || lsub[1] == "ftp") && (m == http.MethodGet || m == http.MethodPut):
		e.basicAuthPolicy(q, sl, lsub[1])
	case key == "config/connectionstrings" && m == http.MethodPut:
		e.updateConnectionStrings(q, sl)
	case key == "config/connectionstrings/list" && m == http.MethodPost:
		e.mu.Lock()
		body := e.connectionStringsJSON(sl)
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, body)
	case key == "slotsswap" && m == http.MethodPost:
		e.startSwap(q, sl)
	case (key == "applyslotconfig" || key == "resetslotconfig") && m == http.MethodPost:
		e.serveSlotConfigPreview(q, sl, key == "applyslotconfig")
	case key == "deploymentstatus" && m == http.MethodGet:
		e.mu.Lock()
		var list []any
		for _, d := range sl.deployments {
			list = append(list, e.deploymentStatusJSON(sl, d))
		}
		e.mu.Unlock()
		writeJSON(q.w, http.StatusOK, map[string]any{"value": list, "nextLink": nil})
	case len(lsub) == 2 && lsub[0] == "deploymentstatus" && m == http.MethodGet:
		e.serveDeploymentStatus(q, sl, sub[1])
	case key == "" || key == "config/web" || key == "config/appsettings" || key == "config/appsettings/list" || key == "slotsswap":
		e.methodNotAllowed(q)
	default:
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
	}
}

// siteJSON is a site or slot as ARM returns it (fields and JSON types of
// Microsoft's GetWebApp/GetWebAppSlot examples). Caller holds e.mu.
func (e *Emulator) siteJSON(sl *slot) map[string]any {
	s := sl.site
	cfg := maps.Clone(sl.config)
	props := map[string]any{
		"state":              "Running",
		"hostNames":          []any{sl.host},
		"repositorySiteName": s.cfg.Name,
		"usageState":         "Normal",
		"enabled":            true,
		"enabledHostNames":   []any{sl.host, sl.scmHost},
		"availabilityState":  "Normal",
		"hostNameSslStates": []any{
			map[string]any{"name": sl.host, "sslState": "Disabled", "hostType": "Standard"},
			map[string]any{"name": sl.scmHost, "sslState": "Disabled", "hostType": "Repository"},
		},
		"serverFarmId":                e.planID(s),
		"reserved":                    true,
		"isXenon":                     false,
		"hyperV":                      false,
		"lastModifiedTimeUtc":         sl.modified.Format(time.RFC3339Nano),
		"vnetRouteAllEnabled":         false,
		"vnetImagePullEnabled":        false,
		"vnetContentShareEnabled":     false,
		"siteConfig":                  cfg,
		"scmSiteAlsoStopped":          false,
		"clientAffinityEnabled":       false,
		"clientCertEnabled":           false,
		"clientCertMode":              "Required",
		"hostNamesDisabled":           false,
		"customDomainVerificationId":  "0000000000000000000000000000000000000000000000000000000000000000",
		"outboundIpAddresses":         "127.0.0.1",
		"possibleOutboundIpAddresses": "127.0.0.1",
		"containerSize":               0,
		"dailyMemoryTimeQuota":        0,
		"resourceGroup":               s.cfg.ResourceGroup,
		"defaultHostName":             sl.host,
		"httpsOnly":                   sl.httpsOnly,
		"redundancyMode":              "None",
		"storageAccountRequired":      false,
		"keyVaultReferenceIdentity":   "SystemAssigned",
		"workloadProfileName":         "",
		"resourceConfig":              map[string]any{"cpu": float64(coresOf(s.cfg.Plan.SKU)), "memory": "0Gi"},
		"sku":                         s.cfg.Plan.Tier,
	}
	if sl.lastSwap != nil {
		props["slotSwapStatus"] = sl.lastSwap
	}
	return map[string]any{
		"id":         e.slotID(sl),
		"name":       sl.resourceName(),
		"type":       slotType(sl, ""),
		"kind":       "app,linux",
		"location":   e.res.Location,
		"properties": props,
	}
}

func (e *Emulator) configJSON(sl *slot) map[string]any {
	return map[string]any{
		"id":         e.slotID(sl) + "/config/web",
		"name":       "web",
		"type":       slotType(sl, "/config"),
		"kind":       "app,linux",
		"location":   e.res.Location,
		"properties": maps.Clone(sl.config),
	}
}

func (e *Emulator) appSettingsJSON(sl *slot) map[string]any {
	props := map[string]any{}
	for k, v := range sl.settings {
		props[k] = v
	}
	return map[string]any{
		"id":         e.slotID(sl) + "/config/appsettings",
		"name":       "appsettings",
		"type":       slotType(sl, "/config"),
		"kind":       "app,linux",
		"location":   e.res.Location,
		"properties": props,
	}
}

// readProps decodes {"properties": {...}} from a request body.
func readProps(q *armReq) (map[string]json.RawMessage, bool) {
	var body struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	b, err := io.ReadAll(io.LimitReader(q.r.Body, 4<<20))
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
		return nil, false
	}
	if body.Properties == nil {
		body.Properties = map[string]json.RawMessage{}
	}
	return body.Properties, true
}

// configTypes are the config/web properties the emulator acts on, with
// their JSON kinds, so a wrong type is refused as ARM would.
var configTypes = map[string]string{
	"appCommandLine": "string", "healthCheckPath": "string", "linuxFxVersion": "string",
	"numberOfWorkers": "number", "alwaysOn": "bool", "http20Enabled": "bool", "minTlsVersion": "string",
	"ftpsState": "string", "webSocketsEnabled": "bool",
}

func (e *Emulator) updateConfig(q *armReq, sl *slot) {
	props, ok := readProps(q)
	if !ok {
		return
	}
	updates := map[string]any{}
	for k, raw := range props {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "bad value for "+k)
			return
		}
		if v == nil {
			continue // null means "leave unchanged"
		}
		if want, ok := configTypes[k]; ok && jsonKind(v) != want {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", fmt.Sprintf("The property '%s' must be a %s.", k, want))
			return
		}
		updates[k] = v
	}
	e.mu.Lock()
	oldCmd := sl.appCommandLine()
	maps.Copy(sl.config, updates)
	sl.modified = time.Now().UTC()
	restart := sl.appCommandLine() != oldCmd
	body := e.configJSON(sl)
	e.mu.Unlock()
	e.logf("arm: %s config/web updated", sl.resourceName())
	if restart {
		go e.restartSlot(sl, "startup command changed")
	}
	writeJSON(q.w, http.StatusOK, body)
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "null"
}

func (e *Emulator) updateAppSettings(q *armReq, sl *slot) {
	props, ok := readProps(q)
	if !ok {
		return
	}
	next := map[string]string{}
	for k, raw := range props {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", fmt.Sprintf("The app setting '%s' must be a string.", k))
			return
		}
		next[k] = s
	}
	e.mu.Lock()
	changed := !maps.Equal(next, sl.settings)
	sl.settings = next
	sl.modified = time.Now().UTC()
	body := e.appSettingsJSON(sl)
	e.mu.Unlock()
	e.logf("arm: %s app settings replaced (%d settings)", sl.resourceName(), len(next))
	if changed {
		// App Service restarts the app when its settings change.
		go e.restartSlot(sl, "app settings changed")
	}
	writeJSON(q.w, http.StatusOK, body)
}

// updateConnectionStrings is PUT config/connectionstrings: the whole set is
// replaced, as App Service does, and the app restarts when it changed.
func (e *Emulator) updateConnectionStrings(q *armReq, sl *slot) {
	props, ok := readProps(q)
	if !ok {
		return
	}
	next := map[string]ConnStringConfig{}
	for k, raw := range props {
		var v struct {
			Value *string `json:"value"`
			Type  string  `json:"type"`
		}
		if err := json.Unmarshal(raw, &v); err != nil || v.Value == nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", fmt.Sprintf("The connection string '%s' must be an object with a value and a type.", k))
			return
		}
		if v.Type == "" {
			v.Type = "Custom"
		}
		next[k] = ConnStringConfig{Value: *v.Value, Type: v.Type}
	}
	e.mu.Lock()
	changed := !maps.Equal(next, sl.connStrings)
	sl.connStrings = next
	sl.modified = time.Now().UTC()
	body := e.connectionStringsJSON(sl)
	e.mu.Unlock()
	e.logf("arm: %s connection strings replaced (%d)", sl.resourceName(), len(next))
	if changed {
		go e.restartSlot(sl, "connection strings changed")
	}
	writeJSON(q.w, http.StatusOK, body)
}

func (e *Emulator) serveSlotConfigNames(q *armReq, s *site) {
	if q.r.Method == http.MethodPut {
		var body struct {
			Properties slotConfigNames `json:"properties"`
		}
		if err := json.NewDecoder(io.LimitReader(q.r.Body, 1<<20)).Decode(&body); err != nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
			return
		}
		for _, l := range []*[]string{&body.Properties.AppSettingNames, &body.Properties.ConnectionStringNames, &body.Properties.AzureStorageConfigNames} {
			if *l == nil {
				*l = []string{}
			}
		}
		e.mu.Lock()
		s.sticky = body.Properties
		e.mu.Unlock()
	}
	e.mu.Lock()
	props := s.sticky
	e.mu.Unlock()
	writeJSON(q.w, http.StatusOK, map[string]any{
		"id":         e.siteID(s) + "/config/slotConfigNames",
		"name":       "slotConfigNames",
		"type":       "Microsoft.Web/sites/config",
		"location":   e.res.Location,
		"properties": props,
	})
}

func (e *Emulator) servePlan(q *armReq, name string) {
	var s *site
	e.mu.Lock()
	for _, x := range e.sites {
		if strings.EqualFold(x.cfg.Plan.Name, name) && strings.EqualFold(x.cfg.ResourceGroup, q.rg) {
			s = x
		}
	}
	e.mu.Unlock()
	if s == nil || len(q.lrest) != 2 {
		notFound(q.w, q.rg, "Microsoft.Web/serverfarms", name)
		return
	}
	if q.r.Method != http.MethodGet {
		e.methodNotAllowed(q)
		return
	}
	p := s.cfg.Plan
	n := 0
	for _, x := range e.sites {
		if x.cfg.Plan.Name == p.Name {
			n++
		}
	}
	writeJSON(q.w, http.StatusOK, map[string]any{
		"id":       e.planID(s),
		"name":     p.Name,
		"type":     "Microsoft.Web/serverfarms",
		"kind":     "linux",
		"location": e.res.Location,
		"properties": map[string]any{
			"status":                 "Ready",
			"maximumNumberOfWorkers": 30,
			"numberOfWorkers":        p.Capacity,
			"geoRegion":              e.res.Location,
			"numberOfSites":          n,
			"isSpot":                 false,
			"reserved":               true,
			"targetWorkerCount":      0,
			"targetWorkerSizeId":     0,
			"provisioningState":      "Succeeded",
			"currentNumberOfWorkers": p.Capacity,
			"perSiteScaling":         false,
			"elasticScaleEnabled":    false,
			"zoneRedundant":          false,
		},
		"sku": map[string]any{
			"name":     p.SKU,
			"tier":     p.Tier,
			"size":     p.SKU,
			"family":   skuFamily(p.SKU),
			"capacity": p.Capacity,
		},
	})
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// skuFamily is the SKU without its size digits: P1v3 -> Pv3, B1 -> B.
func skuFamily(sku string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, sku)
}
