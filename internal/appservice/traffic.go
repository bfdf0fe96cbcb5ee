package appservice

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// SetTraffic sends percent of production's new visitors to slot with
// App Service's traffic routing (siteConfig.experiments.rampUpRules on the
// production site); 0 removes the rule. App Service pins each visitor to
// the slot it picked with the x-ms-routing-name cookie, so a share only
// applies to visitors who have no cookie yet.
func (c *Client) SetTraffic(ctx context.Context, prod Target, slot string, percent float64) error {
	prod.Slot = ""
	rules := []*armappservice.RampUpRule{}
	if percent > 0 {
		s, err := c.GetSite(ctx, Target{ResourceGroup: prod.ResourceGroup, App: prod.App, Slot: slot})
		if err != nil {
			return err
		}
		rules = append(rules, &armappservice.RampUpRule{
			Name:              to.Ptr(slot),
			ActionHostName:    to.Ptr(s.DefaultHostName),
			ReroutePercentage: to.Ptr(percent),
		})
	}
	return c.patchSiteConfig(ctx, prod, &armappservice.SiteConfig{
		Experiments: &armappservice.Experiments{RampUpRules: rules},
	})
}

// Traffic reads production's routing rules: the percentage each slot gets.
func (c *Client) Traffic(ctx context.Context, prod Target) (map[string]float64, error) {
	r, err := c.webApps.GetConfiguration(ctx, prod.ResourceGroup, prod.App, nil)
	if err != nil {
		return nil, armError(err, "reading the traffic routing of "+prod.String())
	}
	out := map[string]float64{}
	if p := r.Properties; p != nil && p.Experiments != nil {
		for _, rule := range p.Experiments.RampUpRules {
			if rule != nil && rule.ReroutePercentage != nil {
				out[deref(rule.Name)] += *rule.ReroutePercentage
			}
		}
	}
	return out, nil
}

// SiteURL is the base URL of the site or slot's default host.
func (c *Client) SiteURL(ctx context.Context, t Target) (string, error) {
	s, err := c.GetSite(ctx, t)
	if err != nil {
		return "", err
	}
	return hostURL("default", s.DefaultHostName)
}

// noSlotTiers are the App Service plan tiers without deployment slots (and
// so without traffic routing to a slot).
var noSlotTiers = map[string]bool{"free": true, "shared": true, "basic": true}

// CheckSlotsAllowed fails with a usage error when the app's plan has no
// deployment slots: a canary routes traffic to a slot.
func (c *Client) CheckSlotsAllowed(ctx context.Context, prod Target) error {
	s, err := c.GetSite(ctx, Target{ResourceGroup: prod.ResourceGroup, App: prod.App})
	if err != nil {
		return err
	}
	sku, tier, err := c.planSKUTier(ctx, s.ServerFarmID)
	if err != nil {
		return armError(err, "reading the App Service plan of "+prod.App)
	}
	if noSlotTiers[strings.ToLower(tier)] {
		return problem.Usagef("scale the plan up to Standard (S1) or above, or release with --strategy swap to an app that has a slot",
			"app %s runs on a %s plan (%s), which has no deployment slots: a canary routes traffic to a slot", prod.App, tier, sku)
	}
	return nil
}
