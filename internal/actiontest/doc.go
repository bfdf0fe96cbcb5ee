// Package actiontest runs djdeploy's GitHub Action for real: nektos/act
// (pinned, built into .tools/bin by .ci/act-deps.sh) runs workflows with
// `uses: ./` on a Docker engine the test starts itself, with base images it
// makes locally (no registry is reachable where the suite runs). The code is
// all in the tests; this file only names the package.
package actiontest
