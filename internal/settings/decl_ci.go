package settings

// Settings of the CI front ends (the GitHub Action and the Azure Pipelines
// templates). Most are CIOnly: a shell user has no job summary, deployment
// record or pull request to comment on. Names starting with github- exist
// only as action inputs, names starting with azure-devops- only as template
// parameters (internal/gen applies that rule).
func init() {
	Register(
		Setting{Name: "command", Group: "CI", Default: "release", CIOnly: true,
			Enum:        []string{"release", "build", "static", "deploy", "swap", "purge", "doctor", "preview", "rollback"},
			Description: "what the step runs: the whole release, one of its parts (build, static, deploy, swap, purge), doctor, preview (a pull request on its own slot, pr-<number>), or rollback (production back to the previous release, or rollback-to)"},
		Setting{Name: "rollback-to", Group: "CI", CIOnly: true,
			Description: "with command rollback: the release id to put back (as 'djdeploy releases' lists it); default: the release production ran before the current one"},
		Setting{Name: "static-source", Group: "CI", CIOnly: true,
			Description: "folder of collected static files that command: static uploads; default: static/ of the artifact folder, else of out"},
		Setting{Name: "pr-comment", Group: "CI", Kind: Bool, Default: "false", CIOnly: true,
			Description: "on a pull request, comment the slot's preview URL (one comment, updated on re-runs)"},
		Setting{Name: "job-summary", Group: "CI", Kind: Bool, Default: "true", CIOnly: true,
			Description: "write the release report (steps, durations, files, purged paths, URLs) as the job summary"},

		Setting{Name: "github-token", Env: "GITHUB_TOKEN", Group: "CI", Secret: true, CIOnly: true,
			Description: "token for the GitHub API (deployment records, PR comment); default: the job's github.token"},
		Setting{Name: "github-deployment", Group: "CI", Kind: Bool, Default: "true", CIOnly: true,
			Description: "record a GitHub deployment with in-progress, success or failure statuses (needs permissions: deployments: write)"},
		Setting{Name: "github-environment", Group: "CI", Default: "production", CIOnly: true,
			Description: "environment name of the GitHub deployment record"},
		Setting{Name: "github-loopback-forward", Group: "CI", Kind: List, CIOnly: true,
			Description: "ports on the runner's loopback to relay into the action's container, so it can reach djdeploy emulator running on the runner (testing only)"},

		Setting{Name: "azure-devops-token", Env: "SYSTEM_ACCESSTOKEN", Group: "CI", Secret: true, CIOnly: true,
			Description: "token for the Azure DevOps API (build tag, PR thread); the templates map $(System.AccessToken)"},
		Setting{Name: "azure-devops-build-tag", Group: "CI", Kind: Bool, Default: "true", CIOnly: true,
			Description: "tag the pipeline run with the release id"},
	)
}
