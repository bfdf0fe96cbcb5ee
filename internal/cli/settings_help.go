package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

// settingsResult is settings' result: every setting.
type settingsResult struct {
	Settings []settingInfo `json:"settings"`
}

type settingInfo struct {
	Name        string `json:"name"`
	Env         string `json:"env"`
	Default     string `json:"default"`
	Description string `json:"description"`
	Secret      bool   `json:"secret"`
}

func newSettingsHelpCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "settings",
		Short: "List every setting with its environment variable and default",
		Long: `Every setting can be given as a flag (--name), an environment variable,
or a key in djdeploy.yaml. Flags win over the environment, the environment
over the file. Secrets are read from the environment or flags only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := settingsResult{Settings: []settingInfo{}}
			for _, s := range settings.All() {
				res.Settings = append(res.Settings, settingInfo{Name: s.Name, Env: s.EnvName(), Default: s.Default,
					Description: s.Description, Secret: s.Secret})
			}
			if !env.Result(cmd, res) {
				return nil
			}
			tw := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tENVIRONMENT\tDEFAULT\tDESCRIPTION")
			for _, s := range settings.All() {
				desc := s.Description
				if s.Secret {
					desc += " (secret)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.EnvName(), s.Default, desc)
			}
			return tw.Flush()
		},
	}
}
