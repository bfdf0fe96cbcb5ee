package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// Database kinds (flexible servers).
const (
	KindPostgreSQL = "PostgreSQL"
	KindMySQL      = "MySQL"
)

// Database is a flexible server and its firewall.
type Database struct {
	Kind                string
	ResourceGroup       string
	Name                string
	PublicNetworkAccess string // Enabled, Disabled ("" unknown)
	Rules               []FirewallRule
}

// FirewallRule is an inclusive IPv4 range.
type FirewallRule struct {
	Name  string
	Start string
	End   string
}

// ServerRef names a flexible server; Kind "" means "PostgreSQL, else MySQL".
type ServerRef struct {
	Kind          string
	ResourceGroup string
	Name          string
}

// ErrServerNotFound is returned by a FirewallReader for a 404.
var ErrServerNotFound = errors.New("database server not found")

// FirewallReader reads a flexible server's network access and firewall.
type FirewallReader interface {
	ReadServer(ctx context.Context, s ServerRef) (*Database, error)
}

// The API versions read; the shapes are Microsoft's 2022-12-01 (PostgreSQL)
// and 2021-05-01 (MySQL) ServerGet and FirewallRuleListByServer examples.
var apiVersions = map[string]string{KindPostgreSQL: "2022-12-01", KindMySQL: "2021-05-01"}

var namespaces = map[string]string{KindPostgreSQL: "Microsoft.DBforPostgreSQL", KindMySQL: "Microsoft.DBforMySQL"}

// ARMFirewall reads flexible servers with raw GETs on the ARM pipeline (no
// SDK module for them is in go.mod, and two GETs do not warrant one).
type ARMFirewall struct {
	client       *arm.Client
	subscription string
}

// NewARMFirewall returns a reader for one subscription.
func NewARMFirewall(subscription string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*ARMFirewall, error) {
	c, err := arm.NewClient("djdeploy/doctor", "v1.0.0", cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the ARM client: %w", err)
	}
	return &ARMFirewall{client: c, subscription: subscription}, nil
}

// ReadServer reads the server (public network access) and its firewall
// rules, following nextLink.
func (a *ARMFirewall) ReadServer(ctx context.Context, s ServerRef) (*Database, error) {
	kinds := []string{s.Kind}
	if s.Kind == "" {
		kinds = []string{KindPostgreSQL, KindMySQL}
	}
	for _, k := range kinds {
		d, err := a.read(ctx, k, s.ResourceGroup, s.Name)
		if errors.Is(err, ErrServerNotFound) && len(kinds) > 1 {
			continue
		}
		return d, err
	}
	return nil, ErrServerNotFound
}

func (a *ARMFirewall) read(ctx context.Context, kind, rg, name string) (*Database, error) {
	base := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/flexibleServers/%s", a.subscription, rg, namespaces[kind], name)
	var server struct {
		Properties struct {
			Network struct {
				PublicNetworkAccess string `json:"publicNetworkAccess"`
			} `json:"network"`
		} `json:"properties"`
	}
	if err := a.get(ctx, runtime.JoinPaths(a.client.Endpoint(), base)+"?api-version="+apiVersions[kind], &server); err != nil {
		return nil, err
	}
	d := &Database{Kind: kind, ResourceGroup: rg, Name: name, PublicNetworkAccess: server.Properties.Network.PublicNetworkAccess}
	next := runtime.JoinPaths(a.client.Endpoint(), base+"/firewallRules") + "?api-version=" + apiVersions[kind]
	for pages := 0; next != "" && pages < 50; pages++ {
		var page struct {
			Value []struct {
				Name       string `json:"name"`
				Properties struct {
					Start string `json:"startIpAddress"`
					End   string `json:"endIpAddress"`
				} `json:"properties"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := a.get(ctx, next, &page); err != nil {
			return nil, err
		}
		for _, r := range page.Value {
			d.Rules = append(d.Rules, FirewallRule{Name: r.Name, Start: r.Properties.Start, End: r.Properties.End})
		}
		next = page.NextLink
	}
	return d, nil
}

func (a *ARMFirewall) get(ctx context.Context, u string, out any) error {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return err
	}
	resp, err := a.client.Pipeline().Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return ErrServerNotFound
	}
	if !runtime.HasStatusCode(resp, http.StatusOK) {
		return runtime.NewResponseError(resp)
	}
	return runtime.UnmarshalAsJSON(resp, out)
}

// hostRe finds flexible server host names in settings values and
// connection strings: <name>[.private].postgres|mysql.database.azure.com.
var hostRe = regexp.MustCompile(`(?i)\b([a-z0-9][a-z0-9-]{1,61}[a-z0-9])\.(?:private\.)?(postgres|mysql)\.database\.(?:azure\.com|chinacloudapi\.cn|usgovcloudapi\.net)\b`)

// discoverServers lists the flexible servers the app's settings name.
func discoverServers(f *Facts) []ServerRef {
	seen := map[string]bool{}
	var out []ServerRef
	addFrom := func(s string) {
		for _, m := range hostRe.FindAllStringSubmatch(s, -1) {
			kind := KindPostgreSQL
			if strings.EqualFold(m[2], "mysql") {
				kind = KindMySQL
			}
			name := strings.ToLower(m[1])
			if !seen[kind+"/"+name] {
				seen[kind+"/"+name] = true
				out = append(out, ServerRef{Kind: kind, Name: name})
			}
		}
	}
	keys := make([]string, 0, len(f.AppSettings))
	for k := range f.AppSettings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		addFrom(f.AppSettings[k])
	}
	for _, v := range f.ConnStrings {
		addFrom(v.Value)
	}
	if f.Django != nil {
		for _, h := range f.Django.DatabaseHosts {
			addFrom(h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readDatabases reads the db-server setting's server, or the servers the
// settings name. A named server that is missing is a usage error; a
// discovered one that is missing (another group, another subscription) is
// reported as not checked.
func readDatabases(ctx context.Context, o Options, f *Facts, r FirewallReader, log progress.Reporter) (dbs []Database, checked, notChecked []string, err error) {
	group := o.DBResourceGroup
	if group == "" {
		group = o.Target.ResourceGroup
	}
	var refs []ServerRef
	explicit := strings.TrimSpace(o.DBServer) != ""
	if explicit {
		ref, err := parseServer(o.DBServer, group)
		if err != nil {
			return nil, nil, nil, err
		}
		refs = []ServerRef{ref}
	} else {
		refs = discoverServers(f)
		for i := range refs {
			refs[i].ResourceGroup = group
		}
		if len(refs) == 0 {
			notChecked = append(notChecked, "database firewall: no Azure Database flexible server is named in the app settings or connection strings (set --db-server to check one)")
		}
	}
	for _, ref := range refs {
		log.Infof("reading the firewall of database server %s", ref.Name)
		d, err := r.ReadServer(ctx, ref)
		switch {
		case errors.Is(err, ErrServerNotFound) && explicit:
			return nil, nil, nil, problem.Usagef("give the server's resource id with --db-server, or its group with --db-resource-group",
				"database server %s not found in resource group %s", ref.Name, ref.ResourceGroup)
		case errors.Is(err, ErrServerNotFound):
			notChecked = append(notChecked, fmt.Sprintf("database server %s (named in the app's settings): not found in resource group %s; set --db-server to its resource id", ref.Name, ref.ResourceGroup))
			continue
		case errors.Is(err, context.Canceled):
			return nil, nil, nil, err
		case err != nil:
			notChecked = append(notChecked, fmt.Sprintf("database server %s: %s", ref.Name, shortErr(err)))
			continue
		}
		dbs = append(dbs, *d)
		checked = append(checked, fmt.Sprintf("%s server %s: %d firewall rules, public network access %s", d.Kind, d.Name, len(d.Rules), orUnknown(d.PublicNetworkAccess)))
	}
	return dbs, checked, notChecked, nil
}

// parseServer reads the db-server setting: a resource id or a name.
func parseServer(s, group string) (ServerRef, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "/") {
		return ServerRef{Name: s, ResourceGroup: group}, nil
	}
	id, err := arm.ParseResourceID(s)
	if err != nil {
		return ServerRef{}, problem.Usagef("give /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.DBforPostgreSQL/flexibleServers/<name>, or the server's name", "db-server %q is not a resource id: %v", s, err)
	}
	ref := ServerRef{ResourceGroup: id.ResourceGroupName, Name: id.Name}
	switch {
	case strings.EqualFold(id.ResourceType.String(), "Microsoft.DBforPostgreSQL/flexibleServers"):
		ref.Kind = KindPostgreSQL
	case strings.EqualFold(id.ResourceType.String(), "Microsoft.DBforMySQL/flexibleServers"):
		ref.Kind = KindMySQL
	default:
		return ServerRef{}, problem.Usagef("give a Microsoft.DBforPostgreSQL/flexibleServers or Microsoft.DBforMySQL/flexibleServers resource id",
			"db-server is a %s, not a PostgreSQL or MySQL flexible server", id.ResourceType.String())
	}
	return ref, nil
}

func shortErr(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusForbidden:
			return "HTTP 403: the principal may not read it (give it Reader on the server)"
		}
		return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	if p, ok := problem.As(err); ok {
		return p.What
	}
	return err.Error()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
