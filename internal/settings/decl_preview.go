package settings

// Settings of `djdeploy preview`: a pull request's own slot, pr-<number>.
// The preview takes the release's build, static and App Service settings
// too (see the preview command for which).
func init() {
	Register(
		Setting{Name: "pr", NotRelease: true, Group: "Release", Commands: []string{"preview"},
			Description: "number of the pull request to preview on slot pr-<number> (the CI front ends read it from the event)"},
		Setting{Name: "preview-delete", Kind: Bool, Default: "false", Group: "CI", CIOnly: true,
			Description: "with command preview: delete the pull request's slot instead of deploying (on pull_request closed; the action also does it by itself for a closed pull request's event)"},
	)
}
