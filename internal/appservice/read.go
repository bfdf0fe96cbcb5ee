package appservice

// Read-only views of a site's security posture, for `djdeploy doctor`.
// Nothing here writes to Azure.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/azure"
)

// Posture is the part of a site's or slot's configuration that decides how
// exposed it is. Pointer fields are nil when Azure did not report them (or
// the principal may not read them); the doctor then says "unknown" rather
// than guessing.
type Posture struct {
	Site            Site
	HTTPSOnly       *bool
	AlwaysOn        *bool
	FTPSState       string // AllAllowed, FtpsOnly, Disabled
	HealthCheckPath string
	MinTLSVersion   string
	// ConfigRead is set when config/web was read (AlwaysOn, FTPSState,
	// HealthCheckPath and MinTLSVersion mean something).
	ConfigRead bool
	// SCMBasicAuth and FTPBasicAuth are basicPublishingCredentialsPolicies
	// scm and ftp (allow).
	SCMBasicAuth *bool
	FTPBasicAuth *bool
	// PlanSKU and PlanTier are the App Service plan's sku.name and sku.tier
	// ("" when the plan cannot be read).
	PlanSKU  string
	PlanTier string
	// Unread lists what could not be read and why (e.g. 403 on the plan).
	Unread []string
}

// ReadPosture reads the site or slot, its config/web, its basic publishing
// credential policies and its plan. Only the site read is fatal: the rest
// lands in Unread, so one missing permission costs one check, not all.
func (c *Client) ReadPosture(ctx context.Context, t Target) (*Posture, error) {
	s, err := c.getSite(ctx, t)
	if err != nil {
		return nil, err
	}
	p := &Posture{Site: siteOf(t, s)}
	if sp := s.Properties; sp != nil {
		p.HTTPSOnly = sp.HTTPSOnly
	}

	// The site GET carries only part of siteConfig; config/web is the
	// authoritative source for alwaysOn, ftpsState and the health path.
	cfg, err := c.siteConfigFull(ctx, t)
	if err != nil {
		p.Unread = append(p.Unread, "site configuration: "+err.Error())
	} else if cfg != nil {
		p.ConfigRead = true
		p.AlwaysOn = cfg.AlwaysOn
		if cfg.FtpsState != nil {
			p.FTPSState = string(*cfg.FtpsState)
		}
		p.HealthCheckPath = deref(cfg.HealthCheckPath)
		if cfg.MinTLSVersion != nil {
			p.MinTLSVersion = string(*cfg.MinTLSVersion)
		}
	}

	if p.SCMBasicAuth, err = c.basicAuthAllowed(ctx, t, "scm"); err != nil {
		p.Unread = append(p.Unread, "SCM basic auth policy: "+err.Error())
	}
	if p.FTPBasicAuth, err = c.basicAuthAllowed(ctx, t, "ftp"); err != nil {
		p.Unread = append(p.Unread, "FTP basic auth policy: "+err.Error())
	}

	if p.PlanSKU, p.PlanTier, err = c.planSKUTier(ctx, p.Site.ServerFarmID); err != nil {
		p.Unread = append(p.Unread, "App Service plan: "+err.Error())
	}
	return p, nil
}

func (c *Client) siteConfigFull(ctx context.Context, t Target) (*armappservice.SiteConfig, error) {
	if t.IsProduction() {
		r, err := c.webApps.GetConfiguration(ctx, t.ResourceGroup, t.App, nil)
		if err != nil {
			return nil, shortARMError(err)
		}
		return r.Properties, nil
	}
	r, err := c.webApps.GetConfigurationSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
	if err != nil {
		return nil, shortARMError(err)
	}
	return r.Properties, nil
}

// basicAuthAllowed reads basicPublishingCredentialsPolicies/{scm|ftp}.
func (c *Client) basicAuthAllowed(ctx context.Context, t Target, which string) (*bool, error) {
	var e armappservice.CsmPublishingCredentialsPoliciesEntity
	var err error
	switch {
	case which == "scm" && t.IsProduction():
		var r armappservice.WebAppsClientGetScmAllowedResponse
		r, err = c.webApps.GetScmAllowed(ctx, t.ResourceGroup, t.App, nil)
		e = r.CsmPublishingCredentialsPoliciesEntity
	case which == "scm":
		var r armappservice.WebAppsClientGetScmAllowedSlotResponse
		r, err = c.webApps.GetScmAllowedSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
		e = r.CsmPublishingCredentialsPoliciesEntity
	case t.IsProduction():
		var r armappservice.WebAppsClientGetFtpAllowedResponse
		r, err = c.webApps.GetFtpAllowed(ctx, t.ResourceGroup, t.App, nil)
		e = r.CsmPublishingCredentialsPoliciesEntity
	default:
		var r armappservice.WebAppsClientGetFtpAllowedSlotResponse
		r, err = c.webApps.GetFtpAllowedSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
		e = r.CsmPublishingCredentialsPoliciesEntity
	}
	if err != nil {
		return nil, shortARMError(err)
	}
	if e.Properties == nil {
		return nil, nil
	}
	return e.Properties.Allow, nil
}

func (c *Client) planSKUTier(ctx context.Context, serverFarmID string) (string, string, error) {
	if serverFarmID == "" {
		return "", "", fmt.Errorf("the site reports no serverFarmId")
	}
	id, err := arm.ParseResourceID(serverFarmID)
	if err != nil {
		return "", "", fmt.Errorf("parsing serverFarmId %q: %w", serverFarmID, err)
	}
	p, err := c.plans.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		return "", "", shortARMError(err)
	}
	if p.SKU == nil {
		return "", "", fmt.Errorf("plan %s reports no SKU", id.Name)
	}
	return deref(p.SKU.Name), deref(p.SKU.Tier), nil
}

// ConnectionString is one of the site's connection strings. Value is a
// secret: use it, never print it.
type ConnectionString struct {
	Type  string // PostgreSQL, MySql, SQLAzure, SQLServer, Custom, ...
	Value string
}

// ConnectionStrings lists the slot's connection strings (POST
// config/connectionstrings/list). The values are secrets.
func (c *Client) ConnectionStrings(ctx context.Context, t Target) (map[string]ConnectionString, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	var d armappservice.ConnectionStringDictionary
	if t.IsProduction() {
		r, err := c.webApps.ListConnectionStrings(ctx, t.ResourceGroup, t.App, nil)
		if err != nil {
			return nil, armError(err, "listing the connection strings of "+t.String())
		}
		d = r.ConnectionStringDictionary
	} else {
		r, err := c.webApps.ListConnectionStringsSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
		if err != nil {
			return nil, armError(err, "listing the connection strings of "+t.String())
		}
		d = r.ConnectionStringDictionary
	}
	out := map[string]ConnectionString{}
	for k, v := range d.Properties {
		if v == nil {
			continue
		}
		cs := ConnectionString{Value: deref(v.Value)}
		if v.Type != nil {
			cs.Type = string(*v.Type)
		}
		out[k] = cs
	}
	return out, nil
}

// shortARMError is a one-line reason (status and code) for a read that is
// reported as unread rather than failed.
func shortARMError(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("HTTP %d %s", re.StatusCode, azure.ARMCode(re))
	}
	return err
}

// connStrPrefix is the environment prefix App Service gives a connection
// string of each type (Custom for any other).
var connStrPrefix = map[string]string{
	"postgresql": "POSTGRESQLCONNSTR_", "mysql": "MYSQLCONNSTR_", "sqlazure": "SQLAZURECONNSTR_",
	"sqlserver": "SQLCONNSTR_", "custom": "CUSTOMCONNSTR_",
	"notificationhub": "NOTIFICATIONHUBCONNSTR_", "servicebus": "SERVICEBUSCONNSTR_",
	"eventhub": "EVENTHUBCONNSTR_", "apihub": "APIHUBCONNSTR_", "docdb": "DOCDBCONNSTR_",
	"rediscache": "REDISCACHECONNSTR_",
}

// ConnectionStringEnv is the environment an app on App Service gets from
// its connection strings: SQLAZURECONNSTR_<name>, POSTGRESQLCONNSTR_<name>,
// MYSQLCONNSTR_<name>, CUSTOMCONNSTR_<name>, ... by type.
func ConnectionStringEnv(cs map[string]ConnectionString) map[string]string {
	env := make(map[string]string, len(cs))
	for k, v := range cs {
		prefix, ok := connStrPrefix[strings.ToLower(v.Type)]
		if !ok {
			prefix = "CUSTOMCONNSTR_"
		}
		env[prefix+k] = v.Value
	}
	return env
}
