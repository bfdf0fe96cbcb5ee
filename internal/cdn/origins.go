package cdn

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/cdn/armcdn/v2"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// Origin is a Front Door origin: a host in one of the profile's origin groups.
type Origin struct {
	Group, Name, HostName string
	Enabled               bool
}

// FindOrigin finds the origin of a Front Door profile whose host name is
// host (an app's default host name), in any origin group.
func (p *Purger) FindOrigin(ctx context.Context, rg, profile, host string) (*Origin, error) {
	gp := p.groups.NewListByProfilePager(rg, profile, nil)
	for gp.More() {
		page, err := gp.NextPage(ctx)
		if err != nil {
			return nil, armError(err, "listing the origin groups of Front Door profile "+profile)
		}
		for _, g := range page.Value {
			if g == nil || g.Name == nil {
				continue
			}
			op := p.origins.NewListByOriginGroupPager(rg, profile, *g.Name, nil)
			for op.More() {
				pg, err := op.NextPage(ctx)
				if err != nil {
					return nil, armError(err, "listing the origins of origin group "+*g.Name)
				}
				for _, o := range pg.Value {
					if o == nil || o.Properties == nil || o.Properties.HostName == nil || o.Name == nil {
						continue
					}
					if strings.EqualFold(strings.TrimSuffix(*o.Properties.HostName, "."), host) {
						en := o.Properties.EnabledState == nil || *o.Properties.EnabledState == armcdn.EnabledStateEnabled
						return &Origin{Group: *g.Name, Name: *o.Name, HostName: host, Enabled: en}, nil
					}
				}
			}
		}
	}
	return nil, problem.Usagef("add the app to an origin group of the Front Door profile, or leave out --origin-rotation",
		"no origin of Front Door profile %s has the host name %s", profile, host)
}

// SetOriginEnabled takes an origin out of rotation (false) or puts it back
// (true): Front Door stops sending it requests and balances them over the
// group's other origins.
func (p *Purger) SetOriginEnabled(ctx context.Context, rg, profile string, o *Origin, enabled bool) error {
	state := armcdn.EnabledStateDisabled
	if enabled {
		state = armcdn.EnabledStateEnabled
	}
	poller, err := p.origins.BeginUpdate(ctx, rg, profile, o.Group, o.Name, armcdn.AFDOriginUpdateParameters{
		Properties: &armcdn.AFDOriginUpdatePropertiesParameters{EnabledState: to.Ptr(state)},
	}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: p.PollFrequency})
	}
	if err != nil {
		return armError(err, "setting Front Door origin "+o.Group+"/"+o.Name+" "+string(state))
	}
	p.log.Infof("front door: origin %s/%s %s", o.Group, o.Name, strings.ToLower(string(state)))
	return nil
}
