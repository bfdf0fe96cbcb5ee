package appservice

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
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
