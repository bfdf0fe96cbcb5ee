package emulator

// The security posture `djdeploy doctor` reads: httpsOnly, the basic
// publishing credential policies, connection strings, and Azure Database
// for PostgreSQL / MySQL flexible servers with their firewall rules. Shapes
// follow Microsoft's examples (Microsoft.Web 2023-12-01 GetWebApp,
// GetPublishingCredentialsPolicy, ListConnectionStrings; DBforPostgreSQL
// 2022-12-01 ServerGet and FirewallRuleListByServer; DBforMySQL 2021-05-01
// the same).

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// BasicAuthConfig is basicPublishingCredentialsPolicies/scm and /ftp.
type BasicAuthConfig struct {
	SCM bool `yaml:"scm"`
	FTP bool `yaml:"ftp"`
}

// ConnStringConfig is one connection string of an app.
type ConnStringConfig struct {
	Value string `yaml:"value"`
	Type  string `yaml:"type"` // PostgreSQL, MySql, SQLAzure, SQLServer, Custom (default Custom)
}

// DatabaseConfig is an Azure Database flexible server.
//
//	databases:
//	  - name: demo-db
//	    kind: postgresql          # or mysql
//	    firewallRules:
//	      - {name: AllowAll, start: 0.0.0.0, end: 255.255.255.255}
type DatabaseConfig struct {
	Name          string `yaml:"name"`
	ResourceGroup string `yaml:"resourceGroup"`
	Kind          string `yaml:"kind"` // postgresql (default) or mysql
	// PublicNetworkAccess is Enabled (default) or Disabled (private access:
	// firewall rules do not apply).
	PublicNetworkAccess string               `yaml:"publicNetworkAccess"`
	FirewallRules       []FirewallRuleConfig `yaml:"firewallRules"`
}

// FirewallRuleConfig is one firewall rule: an inclusive IPv4 range.
type FirewallRuleConfig struct {
	Name  string `yaml:"name" json:"name"`
	Start string `yaml:"start" json:"startIpAddress"`
	End   string `yaml:"end" json:"endIpAddress"`
}

// dbServer is a running database server resource.
type dbServer struct {
	cfg   DatabaseConfig
	rules []FirewallRuleConfig
}

func (d *dbServer) namespace() string {
	if d.cfg.Kind == "mysql" {
		return "Microsoft.DBforMySQL"
	}
	return "Microsoft.DBforPostgreSQL"
}

func (d *dbServer) fqdn() string {
	if d.cfg.Kind == "mysql" {
		return d.cfg.Name + ".mysql.database.azure.com"
	}
	return d.cfg.Name + ".postgres.database.azure.com"
}

// normalizeDatabases fills the defaults of Resources.Databases and checks
// names, kinds and rule addresses.
func (r *Resources) normalizeDatabases() error {
	seen := map[string]bool{}
	for i := range r.Databases {
		d := &r.Databases[i]
		if !nameRE.MatchString(d.Name) {
			return fmt.Errorf("emulator config: database server name %q: use letters, digits and hyphens", d.Name)
		}
		if d.ResourceGroup == "" {
			d.ResourceGroup = r.ResourceGroup
		}
		d.Kind = strings.ToLower(d.Kind)
		switch d.Kind {
		case "", "postgres", "postgresql":
			d.Kind = "postgresql"
		case "mysql":
		default:
			return fmt.Errorf("emulator config: database server %s: kind %q is not postgresql or mysql", d.Name, d.Kind)
		}
		key := d.Kind + "/" + strings.ToLower(d.ResourceGroup) + "/" + strings.ToLower(d.Name)
		if seen[key] {
			return fmt.Errorf("emulator config: database server %q declared twice", d.Name)
		}
		seen[key] = true
		switch strings.ToLower(d.PublicNetworkAccess) {
		case "", "enabled":
			d.PublicNetworkAccess = "Enabled"
		case "disabled":
			d.PublicNetworkAccess = "Disabled"
		default:
			return fmt.Errorf("emulator config: database server %s: publicNetworkAccess %q is not Enabled or Disabled", d.Name, d.PublicNetworkAccess)
		}
		if err := checkRules(d.FirewallRules); err != nil {
			return fmt.Errorf("emulator config: database server %s: %w", d.Name, err)
		}
	}
	return nil
}

var ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func checkRules(rules []FirewallRuleConfig) error {
	for _, fr := range rules {
		if !ruleNameRE.MatchString(fr.Name) {
			return fmt.Errorf("firewall rule name %q: use letters, digits, hyphens and underscores", fr.Name)
		}
		for _, a := range []string{fr.Start, fr.End} {
			if ip := net.ParseIP(a); ip == nil || ip.To4() == nil {
				return fmt.Errorf("firewall rule %s: %q is not an IPv4 address", fr.Name, a)
			}
		}
	}
	return nil
}

// applyPosture sets a new slot's httpsOnly, basic auth policies, Always On,
// FTP state and connection strings from its app's config.
func applyPosture(sl *slot, ac AppConfig) {
	if ac.HTTPSOnly != nil {
		sl.httpsOnly = *ac.HTTPSOnly
	}
	sl.basicAuth = map[string]bool{"scm": false, "ftp": false}
	if ac.BasicAuth != nil {
		sl.basicAuth["scm"], sl.basicAuth["ftp"] = ac.BasicAuth.SCM, ac.BasicAuth.FTP
	}
	if ac.AlwaysOn != nil {
		sl.config["alwaysOn"] = *ac.AlwaysOn
	}
	if ac.FTPSState != "" {
		sl.config["ftpsState"] = ac.FTPSState
	}
	sl.connStrings = map[string]ConnStringConfig{}
	for k, v := range ac.ConnectionStrings {
		if v.Type == "" {
			v.Type = "Custom"
		}
		sl.connStrings[k] = v
	}
}

func dbKey(kind, rg, name string) string {
	return kind + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// addDatabases creates the configured database servers.
func (e *Emulator) addDatabases() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dbs == nil {
		e.dbs = map[string]*dbServer{}
	}
	for _, d := range e.res.Databases {
		e.dbs[dbKey(d.Kind, d.ResourceGroup, d.Name)] = &dbServer{cfg: d, rules: append([]FirewallRuleConfig{}, d.FirewallRules...)}
	}
}

func (e *Emulator) knownDBGroup(rg string) bool {
	for _, d := range e.res.Databases {
		if strings.EqualFold(d.ResourceGroup, rg) {
			return true
		}
	}
	return false
}

// serveDB serves flexibleServers/{name} and its firewallRules (GET only:
// what doctor reads).
func (e *Emulator) serveDB(q *armReq) {
	kind := "postgresql"
	if q.namespace == "microsoft.dbformysql" {
		kind = "mysql"
	}
	if len(q.lrest) < 2 || q.lrest[0] != "flexibleservers" || q.rg == "" {
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
		return
	}
	e.mu.Lock()
	d := e.dbs[dbKey(kind, q.rg, q.rest[1])]
	var rules []FirewallRuleConfig
	if d != nil {
		rules = append(rules, d.rules...)
	}
	e.mu.Unlock()
	ns := "Microsoft.DBforPostgreSQL"
	if kind == "mysql" {
		ns = "Microsoft.DBforMySQL"
	}
	if d == nil {
		notFound(q.w, q.rg, ns+"/flexibleServers", q.rest[1])
		return
	}
	if q.r.Method != http.MethodGet {
		e.methodNotAllowed(q)
		return
	}
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/flexibleServers/%s", e.res.Subscription, d.cfg.ResourceGroup, d.namespace(), d.cfg.Name)
	ruleJSON := func(fr FirewallRuleConfig) map[string]any {
		return map[string]any{
			"id":         id + "/firewallRules/" + fr.Name,
			"name":       fr.Name,
			"type":       d.namespace() + "/flexibleServers/firewallRules",
			"properties": map[string]any{"startIpAddress": fr.Start, "endIpAddress": fr.End},
		}
	}
	switch {
	case len(q.lrest) == 2:
		version := "16"
		sku := map[string]any{"name": "Standard_B1ms", "tier": "Burstable"}
		if kind == "mysql" {
			version = "8.0.21"
		}
		writeJSON(q.w, http.StatusOK, map[string]any{
			"id": id, "name": d.cfg.Name, "type": d.namespace() + "/flexibleServers", "location": e.res.Location,
			"sku": sku, "tags": map[string]any{},
			"properties": map[string]any{
				"fullyQualifiedDomainName": d.fqdn(),
				"version":                  version,
				"administratorLogin":       "djangoadmin",
				"state":                    "Ready",
				"storage":                  map[string]any{"storageSizeGB": 32},
				"backup":                   map[string]any{"backupRetentionDays": 7, "geoRedundantBackup": "Disabled"},
				"network":                  map[string]any{"publicNetworkAccess": d.cfg.PublicNetworkAccess},
				"highAvailability":         map[string]any{"mode": "Disabled"},
			},
		})
	case len(q.lrest) == 3 && q.lrest[2] == "firewallrules":
		list := []any{}
		for _, fr := range rules {
			list = append(list, ruleJSON(fr))
		}
		writeJSON(q.w, http.StatusOK, map[string]any{"value": list})
	case len(q.lrest) == 4 && q.lrest[2] == "firewallrules":
		for _, fr := range rules {
			if strings.EqualFold(fr.Name, q.rest[3]) {
				writeJSON(q.w, http.StatusOK, ruleJSON(fr))
				return
			}
		}
		notFound(q.w, q.rg, d.namespace()+"/flexibleServers/firewallRules", d.cfg.Name+"/"+q.rest[3])
	default:
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
	}
}

// basicAuthPolicy serves GET and PUT basicPublishingCredentialsPolicies/{scm|ftp}.
func (e *Emulator) basicAuthPolicy(q *armReq, sl *slot, which string) {
	if q.r.Method == http.MethodPut {
		var body struct {
			Properties struct {
				Allow *bool `json:"allow"`
			} `json:"properties"`
		}
		if err := json.NewDecoder(io.LimitReader(q.r.Body, 1<<20)).Decode(&body); err != nil || body.Properties.Allow == nil {
			armError(q.w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid: properties.allow (a boolean) is required.")
			return
		}
		e.mu.Lock()
		sl.basicAuth[which] = *body.Properties.Allow
		e.mu.Unlock()
	}
	e.mu.Lock()
	allow := sl.basicAuth[which]
	e.mu.Unlock()
	writeJSON(q.w, http.StatusOK, map[string]any{
		"id":         e.slotID(sl) + "/basicPublishingCredentialsPolicies/" + which,
		"name":       which,
		"type":       slotType(sl, "/basicPublishingCredentialsPolicies"),
		"properties": map[string]any{"allow": allow},
	})
}

// connectionStringsJSON is POST config/connectionstrings/list. Caller holds e.mu.
func (e *Emulator) connectionStringsJSON(sl *slot) map[string]any {
	props := map[string]any{}
	for k, v := range sl.connStrings {
		props[k] = map[string]any{"value": v.Value, "type": v.Type}
	}
	return map[string]any{
		"id":         e.slotID(sl) + "/config/connectionstrings",
		"name":       "connectionstrings",
		"type":       slotType(sl, "/config"),
		"kind":       "app,linux",
		"location":   e.res.Location,
		"properties": props,
	}
}

// Posture changes a slot's security posture; nil fields are left as they
// are. The admin endpoint POST /_emulator/posture takes the same fields.
type Posture struct {
	App             string  `json:"app"`
	Slot            string  `json:"slot"` // "" = production
	HTTPSOnly       *bool   `json:"httpsOnly,omitempty"`
	SCMBasicAuth    *bool   `json:"scmBasicAuth,omitempty"`
	FTPBasicAuth    *bool   `json:"ftpBasicAuth,omitempty"`
	AlwaysOn        *bool   `json:"alwaysOn,omitempty"`
	FTPSState       *string `json:"ftpsState,omitempty"`
	HealthCheckPath *string `json:"healthCheckPath,omitempty"`
}

// SetPosture applies p to its slot.
func (e *Emulator) SetPosture(p Posture) error {
	sl := e.findSlot(p.App, p.Slot)
	if sl == nil {
		return fmt.Errorf("no slot %q of app %q", p.Slot, p.App)
	}
	if p.FTPSState != nil {
		switch *p.FTPSState {
		case "AllAllowed", "FtpsOnly", "Disabled":
		default:
			return fmt.Errorf("ftpsState %q is not AllAllowed, FtpsOnly or Disabled", *p.FTPSState)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.HTTPSOnly != nil {
		sl.httpsOnly = *p.HTTPSOnly
	}
	if p.SCMBasicAuth != nil {
		sl.basicAuth["scm"] = *p.SCMBasicAuth
	}
	if p.FTPBasicAuth != nil {
		sl.basicAuth["ftp"] = *p.FTPBasicAuth
	}
	if p.AlwaysOn != nil {
		sl.config["alwaysOn"] = *p.AlwaysOn
	}
	if p.FTPSState != nil {
		sl.config["ftpsState"] = *p.FTPSState
	}
	if p.HealthCheckPath != nil {
		sl.config["healthCheckPath"] = *p.HealthCheckPath
	}
	return nil
}

// SetFirewallRules replaces a database server's firewall rules (server is
// its name; the first server of that name in any group and kind).
func (e *Emulator) SetFirewallRules(server string, rules []FirewallRuleConfig) error {
	if err := checkRules(rules); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range sortedKeys(e.dbs) {
		d := e.dbs[k]
		if strings.EqualFold(d.cfg.Name, server) {
			d.rules = append([]FirewallRuleConfig{}, rules...)
			return nil
		}
	}
	return fmt.Errorf("no database server %q (declare it under databases: in the resources)", server)
}

// FirewallRules returns a database server's rules, sorted by name.
func (e *Emulator) FirewallRules(server string) ([]FirewallRuleConfig, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range sortedKeys(e.dbs) {
		d := e.dbs[k]
		if strings.EqualFold(d.cfg.Name, server) {
			out := append([]FirewallRuleConfig{}, d.rules...)
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return out, nil
		}
	}
	return nil, fmt.Errorf("no database server %q", server)
}

// postureAdmin adds the posture endpoints to the admin mux:
//
//	POST /_emulator/posture                          a Posture
//	PUT  /_emulator/databases/{server}/firewall-rules [{"name","startIpAddress","endIpAddress"}]
func (e *Emulator) postureAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /_emulator/posture", func(w http.ResponseWriter, r *http.Request) {
		var p Posture
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			http.Error(w, "want a JSON posture: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.SetPosture(p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /_emulator/databases/{server}/firewall-rules", func(w http.ResponseWriter, r *http.Request) {
		var rules []FirewallRuleConfig
		if err := json.NewDecoder(r.Body).Decode(&rules); err != nil {
			http.Error(w, "want a JSON list of firewall rules: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.SetFirewallRules(r.PathValue("server"), rules); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
