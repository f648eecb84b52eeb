// Package marker holds the line the lab writes into a test's output when
// the test runs as root in it, which make test's summary (internal/testsum)
// counts. A package of its own so that testsum needs nothing else of the
// lab.
package marker

// Root is logged by lab.Require once a test has what it needs to run.
const Root = "lab: runs as root"
