// Package harness holds the runner-harness tests: they build the real
// djdeploy binary and run it the way each CI runs a step (the GitHub
// Action's container environment, an Azure Pipelines script step) against
// one emulator, with fake GitHub, Azure DevOps and OIDC endpoints, and scan
// every byte the runs leave behind for secrets. It has no non-test code.
package harness
