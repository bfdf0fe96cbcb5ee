package cli

// For the tests of package cli_test, which run the real binary through
// internal/e2e (which imports this package).
var (
	CompileSchema  = compileSchema
	ValidateOutput = validateOutput
)
