package emulator

// What Microsoft's own clients (azure-cli, the Azure SDK for Python) need
// besides what djdeploy uses: subscription and resource-group reads, site
// and profile lists, restart, site update, publishing credentials, an
// anonymous /metadata/endpoints, request ids, api-version checks, and
// operation URLs that keep the scheme the client used (azure-core refuses
// to send a bearer token to a plain-http URL). Written from Azure's REST
// specs, not from djdeploy's clients.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// requestBase is scheme://host as the client addressed this request, so
// the URLs the emulator hands back (operation results, Kudu's deployment
// URLs) use TLS when the request did.
func requestBase(r *http.Request) string {
	if requestTLS(r) {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// withRequestIDs sets ARM's x-ms-request-id and x-ms-correlation-request-id
// (the client's own correlation id echoed when it sent one).
func withRequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newGUID()
		corr := r.Header.Get("x-ms-correlation-request-id")
		if corr == "" {
			corr = id
		}
		w.Header().Set("x-ms-request-id", id)
		w.Header().Set("x-ms-correlation-request-id", corr)
		w.Header().Set("x-ms-routing-request-id", "LOCAL:"+time.Now().UTC().Format("20060102T150405Z")+":"+id)
		if c := r.Header.Get("x-ms-client-request-id"); c != "" {
			w.Header().Set("x-ms-client-request-id", c)
		}
		next.ServeHTTP(w, r)
	})
}

// serveMetadata is ARM's anonymous GET /metadata/endpoints (the 2022-09-01
// shape, one cloud), which `az cloud register --endpoint-resource-manager`
// reads to learn the authority and the token audience.
func (e *Emulator) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
		return
	}
	arm := requestBase(r) + e.cfg.ARMBasePath + "/"
	writeJSON(w, http.StatusOK, map[string]any{
		"name":            "DjdeployEmulator",
		"resourceManager": arm,
		"portal":          arm,
		"gallery":         arm,
		"authentication": map[string]any{
			"loginEndpoint":    e.authHost + "/",
			"audiences":        []string{ARMAudience, "https://management.azure.com/"},
			"tenant":           "common",
			"identityProvider": "AAD",
		},
		"appServiceResourceId": appServiceAudiences[0],
		"graph":                arm,
		"graphAudience":        arm,
		"suffixes": map[string]any{
			"storage":        "core.windows.net",
			"keyVaultDns":    "vault.azure.net",
			"acrLoginServer": "azurecr.io",
		},
	})
}

var apiVersionRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(-preview|-privatepreview|-beta|-alpha)?$`)

// firstAPIVersion is the oldest api-version ARM serves per resource
// provider namespace (and for the subscription-level reads).
var firstAPIVersion = map[string]string{
	"":                          "2014-04-01",
	"microsoft.web":             "2014-06-01",
	"microsoft.cdn":             "2015-06-01",
	"microsoft.insights":        "2014-04-01",
	"microsoft.dbforpostgresql": "2017-12-01",
	"microsoft.dbformysql":      "2017-12-01",
}

// checkAPIVersion answers ARM's 400 InvalidApiVersionParameter for an
// api-version that is malformed, older than the namespace's first, or
// later than today; it reports whether the request may go on.
func (e *Emulator) checkAPIVersion(w http.ResponseWriter, namespace, typ, v string) bool {
	m := apiVersionRE.FindStringSubmatch(v)
	ok := m != nil
	if ok {
		d, err := time.Parse("2006-01-02", m[1]+"-"+m[2]+"-"+m[3])
		first, _ := time.Parse("2006-01-02", firstAPIVersion[namespace])
		ok = err == nil && !d.Before(first) && !d.After(time.Now().UTC().Add(24*time.Hour))
	}
	if ok {
		return true
	}
	where := "the subscription"
	if namespace != "" {
		where = fmt.Sprintf("resource type '%s' of namespace '%s'", typ, namespace)
	}
	armError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
		fmt.Sprintf("The api-version '%s' is invalid. The supported versions for %s are dates from '%s' on, in the form 'yyyy-mm-dd' or 'yyyy-mm-dd-preview'.", v, where, firstAPIVersion[namespace]))
	return false
}

// serveSubscriptionScope answers the reads `az login` and the SDKs make
// before any resource: GET /subscriptions, /subscriptions/{id},
// /subscriptions/{id}/resourcegroups[/{rg}].
func (e *Emulator) serveSubscriptionScope(w http.ResponseWriter, r *http.Request, segs, ls []string) {
	if r.Method != http.MethodGet && !(r.Method == http.MethodHead && len(segs) == 4) {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
		return
	}
	sub := func() map[string]any {
		return map[string]any{
			"id":                   "/subscriptions/" + e.res.Subscription,
			"authorizationSource":  "RoleBased",
			"managedByTenants":     []any{},
			"subscriptionId":       e.res.Subscription,
			"tenantId":             e.res.Tenant,
			"displayName":          "djdeploy emulator",
			"state":                "Enabled",
			"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
		}
	}
	if len(segs) == 1 {
		writeJSON(w, http.StatusOK, map[string]any{"value": []any{sub()}, "count": map[string]any{"type": "Total", "value": 1}})
		return
	}
	if !strings.EqualFold(segs[1], e.res.Subscription) {
		armError(w, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", segs[1]))
		return
	}
	switch {
	case len(segs) == 2:
		writeJSON(w, http.StatusOK, sub())
	case len(segs) == 3 && ls[2] == "resourcegroups":
		var list []any
		for _, g := range e.groups() {
			list = append(list, e.groupJSON(g))
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": list})
	case len(segs) == 4 && ls[2] == "resourcegroups":
		if !e.knownGroup(segs[3]) {
			armError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", segs[3]))
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		for _, g := range e.groups() {
			if strings.EqualFold(g, segs[3]) {
				writeJSON(w, http.StatusOK, e.groupJSON(g))
				return
			}
		}
	default:
		armError(w, http.StatusNotFound, "NotFound", "No route matches "+r.URL.Path)
	}
}

// groups are the resource groups named by the configured resources, in
// their configured case.
func (e *Emulator) groups() []string {
	seen := map[string]string{}
	for _, a := range e.res.Apps {
		seen[strings.ToLower(a.ResourceGroup)] = a.ResourceGroup
	}
	for _, p := range e.res.CDN {
		seen[strings.ToLower(p.ResourceGroup)] = p.ResourceGroup
	}
	var out []string
	for _, g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

func (e *Emulator) groupJSON(g string) map[string]any {
	return map[string]any{
		"id":         fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", e.res.Subscription, g),
		"name":       g,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   e.res.Location,
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}
}

// serveSiteList is GET .../providers/Microsoft.Web/sites at subscription
// or resource-group scope.
func (e *Emulator) serveSiteList(q *armReq) {
	if q.r.Method != http.MethodGet {
		e.methodNotAllowed(q)
		return
	}
	e.mu.Lock()
	list := []any{}
	for _, k := range sortedKeys(e.sites) {
		s := e.sites[k]
		if q.rg == "" || strings.EqualFold(s.cfg.ResourceGroup, q.rg) {
			list = append(list, e.siteJSON(s.slots["production"]))
		}
	}
	e.mu.Unlock()
	writeJSON(q.w, http.StatusOK, map[string]any{"value": list, "nextLink": nil})
}

// serveProfileList is GET .../providers/Microsoft.Cdn/profiles at
// subscription or resource-group scope.
func (e *Emulator) serveProfileList(q *armReq) {
	if q.r.Method != http.MethodGet {
		e.methodNotAllowed(q)
		return
	}
	e.mu.Lock()
	var ps []*profile
	for _, k := range sortedKeys(e.profiles) {
		p := e.profiles[k]
		if q.rg == "" || strings.EqualFold(p.cfg.ResourceGroup, q.rg) {
			ps = append(ps, p)
		}
	}
	e.mu.Unlock()
	list := []any{}
	for _, p := range ps {
		list = append(list, e.profileJSON(p))
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"value": list, "nextLink": nil})
}

// serveRestart is POST .../restart: App Service restarts the slot's app
// with its current settings; ?synchronous=true waits for it.
func (e *Emulator) serveRestart(q *armReq, sl *slot) {
	if strings.EqualFold(q.r.URL.Query().Get("synchronous"), "true") {
		e.restartSlot(sl, "restart requested")
	} else {
		go e.restartSlot(sl, "restart requested")
	}
	q.w.WriteHeader(http.StatusOK)
}

// updateSite is PUT or PATCH on a site or slot: the emulator acts on
// httpsOnly and on siteConfig (as config/web); everything else a client
// sends back from its GET is accepted unchanged.
func (e *Emulator) updateSite(q *armReq, sl *slot) {
	props, ok := readProps(q)
	if !ok {
		return
	}
	var httpsOnly *bool
	if raw, ok := props["httpsOnly"]; ok && string(raw) != "null" {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The property 'httpsOnly' must be a bool.")
			return
		}
		httpsOnly = &b
	}
	restart := false
	if raw, ok := props["siteConfig"]; ok && string(raw) != "null" {
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The property 'siteConfig' must be an object.")
			return
		}
		e.mu.Lock()
		old := sl.appCommandLine()
		for k, v := range cfg {
			if want, known := configTypes[k]; v != nil && known && jsonKind(v) == want {
				sl.config[k] = v
			}
		}
		restart = sl.appCommandLine() != old
		e.mu.Unlock()
	}
	e.mu.Lock()
	if httpsOnly != nil {
		sl.httpsOnly = *httpsOnly
	}
	sl.modified = time.Now().UTC()
	body := e.siteJSON(sl)
	e.mu.Unlock()
	e.logf("arm: %s updated", sl.resourceName())
	if restart {
		go e.restartSlot(sl, "startup command changed")
	}
	writeJSON(q.w, http.StatusOK, body)
}

// publishingUser is the slot's deployment user, as App Service names it:
// $app for production, $app__slot for a slot.
func publishingUser(sl *slot) string {
	if sl.isProduction() {
		return "$" + sl.site.cfg.Name
	}
	return "$" + sl.site.cfg.Name + "__" + sl.name
}

// publishingPassword is stable for the emulator's life and unguessable
// without its admin secret.
func (e *Emulator) publishingPassword(sl *slot) string {
	m := hmac.New(sha256.New, []byte(e.adminSecret))
	m.Write([]byte("publishing/" + strings.ToLower(sl.resourceName())))
	return hex.EncodeToString(m.Sum(nil))[:40]
}

// servePublishingCredentials is POST .../config/publishingcredentials/list.
func (e *Emulator) servePublishingCredentials(q *armReq, sl *slot) {
	user, pass := publishingUser(sl), e.publishingPassword(sl)
	writeJSON(q.w, http.StatusOK, map[string]any{
		"id":       e.slotID(sl) + "/publishingcredentials/" + sl.site.cfg.Name,
		"name":     sl.site.cfg.Name,
		"type":     slotType(sl, "/publishingcredentials"),
		"location": e.res.Location,
		"properties": map[string]any{
			"name":                       nil,
			"publishingUserName":         user,
			"publishingPassword":         pass,
			"publishingPasswordHash":     nil,
			"publishingPasswordHashSalt": nil,
			"metadata":                   nil,
			"isDeleted":                  false,
			"scmUri":                     fmt.Sprintf("https://%s:%s@%s", user, pass, sl.scmHost),
		},
	})
}

// servePublishXML is POST .../publishxml: the publish profile, with the
// credentials only while basic auth is allowed (as App Service does).
func (e *Emulator) servePublishXML(q *armReq, sl *slot) {
	e.mu.Lock()
	allow := sl.basicAuth["scm"]
	e.mu.Unlock()
	user, pass := publishingUser(sl), e.publishingPassword(sl)
	if !allow {
		user, pass = "REDACTED", "REDACTED"
	}
	a := html.EscapeString
	name := a(sl.resourceName())
	q.w.Header().Set("Content-Type", "application/xml")
	q.w.WriteHeader(http.StatusOK)
	fmt.Fprintf(q.w, `<publishData><publishProfile profileName="%s - Web Deploy" publishMethod="MSDeploy" publishUrl="%s" msdeploySite="%s" userName="%s" userPWD="%s" destinationAppUrl="http://%s" SQLServerDBConnectionString="" mySQLDBConnectionString="" hostingProviderForumLink="" controlPanelLink="" webSystem="WebSites"><databases /></publishProfile><publishProfile profileName="%s - Zip Deploy" publishMethod="ZipDeploy" publishUrl="%s" userName="%s" userPWD="%s" destinationAppUrl="http://%s" SQLServerDBConnectionString="" mySQLDBConnectionString="" hostingProviderForumLink="" controlPanelLink="" webSystem="WebSites"><databases /></publishProfile></publishData>`,
		name, a(sl.scmHost), name, a(user), a(pass), a(sl.host),
		name, a(sl.scmHost), a(user), a(pass), a(sl.host))
}

// kuduAuth lets basic auth with the slot's publishing credentials through
// while the slot's scm basic-auth policy allows it; everything else goes
// to the bearer check.
func (e *Emulator) kuduAuth(sl *slot, next http.Handler) http.Handler {
	bearer := e.requireBearer(true, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok {
			e.mu.Lock()
			allow := sl.basicAuth["scm"]
			e.mu.Unlock()
			if !allow {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintln(w, "Basic authentication is disabled for this site (basicPublishingCredentialsPolicies/scm allow=false); use a Microsoft Entra bearer token.")
				return
			}
			if hmac.Equal([]byte(u), []byte(publishingUser(sl))) && hmac.Equal([]byte(p), []byte(e.publishingPassword(sl))) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="site"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "The user name or password is wrong.")
			return
		}
		bearer.ServeHTTP(w, r)
	})
}
