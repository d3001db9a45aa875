// Package netpol proves meshdemo's NetworkPolicies with a NetworkPolicy engine's own code: every
// render of every flavour is loaded into cyclonus's policy matcher (github.com/mattfenwick/cyclonus
// pkg/matcher, the engine SIG Network's policy-assistant grew from), and every pair of pods that
// a cluster running meshdemo holds is asked, port by port, whether a connection passes. The
// expected call graph is data in the test, never read back from the manifests.
//
// Its own module (GOWORK=off), so that the engine's dependencies (client-go) stay out of
// verify's race-enabled build; `make test-netpol` runs it.
package netpol
