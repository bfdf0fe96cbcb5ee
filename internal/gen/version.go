package gen

// ActionImageRepo is where the release workflow (.github/workflows/release.yml)
// pushes the action's prebuilt image. action.yml names it with
// ReleaseVersion, so a workflow that uses the action pulls a ready image
// instead of compiling the Go module and the Azure SDK before its first step.
const ActionImageRepo = "ghcr.io/djdeploy/djdeploy"

// ReleaseVersion is the version the next release tag must carry (tag
// v<ReleaseVersion>): the release workflow refuses a tag that does not match
// the image action.yml names (.ci/check-release-version.sh), so an action
// never points at an image that its release did not build. Bump it, run
// `make generate`, then tag.
const ReleaseVersion = "1.0.0"

// ActionImage is action.yml's runs.image.
func ActionImage() string { return "docker://" + ActionImageRepo + ":" + ReleaseVersion }
