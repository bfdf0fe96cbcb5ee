package appservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// PreviewSlotPrefix starts the name of every pull request's preview slot.
// A release never deploys to a slot named so, and a preview never to any
// other.
const PreviewSlotPrefix = "pr-"

// maxSlotHostLabel is App Service's limit on the site name, a hyphen and
// the slot name together (the portal: "the combined site name and slot name
// must be fewer than 60 characters").
const maxSlotHostLabel = 59

// IsPreviewSlot reports whether slot is a pull request's preview slot.
func IsPreviewSlot(slot string) bool {
	return strings.HasPrefix(strings.ToLower(slot), PreviewSlotPrefix)
}

// PreviewTarget is the preview slot of pull request pr on app: pr-<number>.
// Bad input (not a positive whole number, a name over App Service's length
// limit) is a usage error, found before any request.
func PreviewTarget(resourceGroup, app, pr string) (Target, error) {
	pr = strings.TrimPrefix(strings.TrimSpace(pr), "#")
	n, err := strconv.ParseUint(pr, 10, 32)
	if err != nil || n == 0 {
		return Target{}, problem.Usagef("give the pull request's number, e.g. --pr 42 (the CI front ends read it from the event)",
			"pull request number %q is not a positive whole number", pr)
	}
	t := Target{ResourceGroup: resourceGroup, App: app, Slot: PreviewSlotPrefix + strconv.FormatUint(n, 10)}
	if err := t.validate(); err != nil {
		return Target{}, err
	}
	if l := len(app) + 1 + len(t.Slot); l > maxSlotHostLabel {
		return Target{}, problem.Usagef(fmt.Sprintf("App Service allows at most %d characters for the app name, a hyphen and the slot name together; previews of %s need an app name of at most %d characters",
			maxSlotHostLabel, t.Slot, maxSlotHostLabel-1-len(t.Slot)),
			"preview slot %s of app %s would be %d characters with the app's name", t.Slot, app, l)
	}
	return t, nil
}

// SlotLimit is how many deployment slots (production not counted) App
// Service allows on a plan tier: none on Free, Shared and Basic, 5 on
// Standard, 20 on Premium and Isolated. ok is false for a tier this table
// does not know; the caller then lets Azure decide.
func SlotLimit(tier string) (limit int, ok bool) {
	t := strings.ToLower(tier)
	switch {
	case t == "free", t == "shared", t == "basic":
		return 0, true
	case t == "standard":
		return 5, true
	case strings.HasPrefix(t, "premium"), strings.HasPrefix(t, "isolated"):
		return 20, true
	}
	return 0, false
}

// Slots lists the app's deployment slots (production not included).
func (c *Client) Slots(ctx context.Context, resourceGroup, app string) ([]string, error) {
	var out []string
	pager := c.webApps.NewListSlotsPager(resourceGroup, app, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, armError(err, "listing the slots of "+app)
		}
		for _, s := range page.Value {
			if s == nil || s.Name == nil {
				continue
			}
			name := *s.Name
			if i := strings.LastIndex(name, "/"); i >= 0 {
				name = name[i+1:]
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// EnsureSlotResult says what EnsureSlot found or did.
type EnsureSlotResult struct {
	Created bool   `json:"created"`
	Tier    string `json:"plan_tier,omitempty"`
	// Copied are the app settings and connection strings copied from
	// production; Sticky those left behind because they are slot settings.
	Copied []string `json:"copied"`
	Sticky []string `json:"sticky"`
}

// EnsureSlot creates slot t, when it does not exist, from production's
// configuration: its plan, runtime, startup command, health check path and
// HTTPS setting, and its app settings and connection strings except the
// slot settings (slotConfigNames), which stay with production, as a swap
// would leave them. The plan's slot limit is checked first: on Free and
// Basic, or with the slots all taken, nothing is created and the error says
// what to do.
func (c *Client) EnsureSlot(ctx context.Context, t Target) (*EnsureSlotResult, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if t.IsProduction() {
		return nil, problem.Usagef("name a deployment slot", "production is not a deployment slot")
	}
	res := &EnsureSlotResult{Copied: []string{}, Sticky: []string{}}
	if _, err := c.webApps.GetSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil); err == nil {
		return res, nil
	} else if !isNotFound(err) {
		return nil, armError(err, "reading slot "+t.String())
	}
	prodT := Target{ResourceGroup: t.ResourceGroup, App: t.App}
	prod, err := c.getSite(ctx, prodT)
	if err != nil {
		return nil, err
	}
	ps := siteOf(prodT, prod)
	sku, tier, err := c.planSKUTier(ctx, ps.ServerFarmID)
	if err != nil {
		return nil, problem.Wrap(err, "give the identity Reader on the App Service plan", "reading the plan of %s", t.App)
	}
	res.Tier = tier
	if limit, ok := SlotLimit(tier); ok {
		existing, err := c.Slots(ctx, t.ResourceGroup, t.App)
		if err != nil {
			return nil, err
		}
		if limit == 0 {
			return nil, problem.Usagef("scale the plan up to Standard or Premium (az appservice plan update --sku S1), or preview without a slot",
				"plan tier %s (%s) of %s has no deployment slots, so pull request previews need another plan", tier, sku, t.App)
		}
		if len(existing) >= limit {
			var previews []string
			for _, s := range existing {
				if IsPreviewSlot(s) {
					previews = append(previews, s)
				}
			}
			fix := "scale the plan up, or delete a slot"
			if len(previews) > 0 {
				fix = fmt.Sprintf("delete the preview of a closed pull request (djdeploy preview --delete --pr N; these exist: %s), or scale the plan up", strings.Join(previews, ", "))
			}
			return nil, problem.Usagef(fix, "%s already has %d deployment slots, the most plan tier %s allows; %s was not created", t.App, len(existing), tier, t.Slot)
		}
	}

	sticky, stickyConns, err := c.slotSettingNames(ctx, t)
	if err != nil {
		return nil, err
	}
	settings, err := c.listAppSettings(ctx, prodT)
	if err != nil {
		return nil, err
	}
	conns, err := c.ConnectionStrings(ctx, prodT)
	if err != nil {
		return nil, err
	}
	full, err := c.siteConfigFull(ctx, prodT)
	if err != nil {
		return nil, err
	}
	sc := &armappservice.SiteConfig{AppSettings: []*armappservice.NameValuePair{}, ConnectionStrings: []*armappservice.ConnStringInfo{}}
	if full != nil {
		sc.LinuxFxVersion, sc.AppCommandLine, sc.HealthCheckPath = full.LinuxFxVersion, full.AppCommandLine, full.HealthCheckPath
		sc.AlwaysOn, sc.FtpsState, sc.MinTLSVersion, sc.Http20Enabled = full.AlwaysOn, full.FtpsState, full.MinTLSVersion, full.Http20Enabled
	}
	for _, k := range sortedKeys(settings) {
		if sticky[k] {
			res.Sticky = append(res.Sticky, k)
			continue
		}
		sc.AppSettings = append(sc.AppSettings, &armappservice.NameValuePair{Name: to.Ptr(k), Value: to.Ptr(settings[k])})
		res.Copied = append(res.Copied, k)
	}
	for _, k := range sortedKeys(conns) {
		if stickyConns[k] {
			res.Sticky = append(res.Sticky, k)
			continue
		}
		cs := conns[k]
		info := &armappservice.ConnStringInfo{Name: to.Ptr(k), ConnectionString: to.Ptr(cs.Value)}
		if cs.Type != "" {
			info.Type = to.Ptr(armappservice.ConnectionStringType(cs.Type))
		}
		sc.ConnectionStrings = append(sc.ConnectionStrings, info)
		res.Copied = append(res.Copied, k)
	}
	site := armappservice.Site{
		Location: prod.Location,
		Kind:     prod.Kind,
		Properties: &armappservice.SiteProperties{
			ServerFarmID: to.Ptr(ps.ServerFarmID),
			SiteConfig:   sc,
		},
	}
	if prod.Properties != nil {
		site.Properties.HTTPSOnly = prod.Properties.HTTPSOnly
	}
	c.log.Infof("creating slot %s from production's configuration (%d settings copied, %d slot settings left with production)", t, len(res.Copied), len(res.Sticky))
	poller, err := c.webApps.BeginCreateOrUpdateSlot(ctx, t.ResourceGroup, t.App, t.Slot, site, nil)
	if err != nil {
		return nil, armError(err, "creating slot "+t.String())
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		return nil, armError(err, "creating slot "+t.String())
	}
	res.Created = true
	return res, nil
}

// DeleteSlot deletes slot t; deleted is false when it did not exist.
func (c *Client) DeleteSlot(ctx context.Context, t Target) (deleted bool, err error) {
	if err := t.validate(); err != nil {
		return false, err
	}
	if t.IsProduction() {
		return false, problem.Usagef("name a deployment slot", "production cannot be deleted as a slot")
	}
	if _, err := c.webApps.GetSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, armError(err, "reading slot "+t.String())
	}
	if _, err := c.webApps.DeleteSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, armError(err, "deleting slot "+t.String())
	}
	return true, nil
}

// slotSettingNames are the app's slot-sticky app setting and connection
// string names.
func (c *Client) slotSettingNames(ctx context.Context, t Target) (settings, conns map[string]bool, err error) {
	r, err := c.webApps.ListSlotConfigurationNames(ctx, t.ResourceGroup, t.App, nil)
	if err != nil {
		return nil, nil, armError(err, "reading the slot setting names")
	}
	settings, conns = map[string]bool{}, map[string]bool{}
	if r.Properties != nil {
		for _, n := range r.Properties.AppSettingNames {
			settings[deref(n)] = true
		}
		for _, n := range r.Properties.ConnectionStringNames {
			conns[deref(n)] = true
		}
	}
	return settings, conns, nil
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
