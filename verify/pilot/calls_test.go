package pilot

import (
	"errors"
	"fmt"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/meshdemo/meshdemo/deploy/matrix"
	"google.golang.org/protobuf/types/known/durationpb"

	"istio.io/istio/pilot/pkg/simulation"
)

// paths are the real requests of the call graph (docs/contract.md).
var paths = map[string]string{
	"client":       "/client/server1",
	"server1":      "/server1/server2",
	"server2":      "/server2/end",
	"user-service": "/api/users",
}

// subsetCluster is the Envoy cluster istiod names for a DestinationRule subset ("" = no subset).
func subsetCluster(svc, subset string) string {
	return versionCluster(matrix.Sidecar, svc, subset, want.appPort)
}

// cluster is the cluster a route of the mesh's flavour sends version v of svc's HTTP port to
// (a subset, or the per-version Service; "" = the Service itself).
func (m *mesh) cluster(svc, version string) string {
	return versionCluster(m.flavour, svc, version, want.appPort)
}

// ingressCluster is where the ingress route sends the documented Host: the client's v1 subset
// (VirtualService) or the client Service (HTTPRoute backendRef).
func (m *mesh) ingressCluster() string {
	// The ingress gateway is no waypoint: it names outbound clusters in every flavour.
	return outboundCluster(m.flavour, "client", want.ingress[m.flavour].clientVersion, want.appPort)
}

// gatewayListenerPort is the ingress gateway pod's listener for the Gateway's port 80.
func (m *mesh) gatewayListenerPort() int { return want.ingress[m.flavour].listenerPort }

// hopRoute is the route one caller pod's sidecar picks for a call along h.
type hopRoute struct {
	caller pod
	routed routed
}

// routeHop sends the call of h from every version of the caller (server1 v1 and v2 both call
// server2) and returns the route each sidecar picks. Callers use the Service's short name and
// port, as the workloads do (SERVER2_URL=http://server2:8080).
func (m *mesh) routeHop(h hop, headers map[string]string) ([]hopRoute, error) {
	proxies, err := m.hopProxies(h.from)
	if err != nil {
		return nil, err
	}
	ip, ok := m.services[h.to]
	if !ok {
		return nil, fmt.Errorf("no Service %s rendered", h.to)
	}
	var out []hopRoute
	for _, hp := range proxies {
		r, err := hp.route(h.to, request{
			host: fmt.Sprintf("%s:%d", h.to, want.appPort), address: ip, port: want.appPort,
			path: paths[h.to], headers: headers,
		})
		if err != nil {
			return nil, fmt.Errorf("%s -> %s from %s: %w", h.from, h.to, hp.name, err)
		}
		out = append(out, hopRoute{hp.pod, r})
	}
	return out, nil
}

// eachRoute runs fn on the route every caller version picks for h, joining the failures.
func (m *mesh) eachRoute(h hop, headers map[string]string, fn func(hr hopRoute) error) error {
	routes, err := m.routeHop(h, headers)
	if err != nil {
		return err
	}
	var errs []error
	for _, hr := range routes {
		if err := fn(hr); err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s from %s (%s): %w", h.from, h.to, hr.caller.name, hr.routed, err))
		}
	}
	return errors.Join(errs...)
}

// gatewayRoute is the route the ingress gateway picks for the documented Host.
func (m *mesh) gatewayRoute(path string, headers map[string]string) (routed, error) {
	return send(m.ingress(), simulation.CallModeGateway, request{
		host: want.gatewayHost, port: m.gatewayListenerPort(), path: path, headers: headers,
	})
}

func wantCluster(r routed, cluster string) error {
	got, err := r.cluster()
	if err != nil {
		return err
	}
	if got != cluster {
		return fmt.Errorf("cluster %s, want %s", got, cluster)
	}
	return nil
}

func wantDuration(what string, got *durationpb.Duration, d time.Duration) error {
	if got == nil {
		return fmt.Errorf("%s unset, want %v", what, d)
	}
	if got.AsDuration() != d {
		return fmt.Errorf("%s %v, want %v", what, got.AsDuration(), d)
	}
	return nil
}

// routeTimeout is the route's timeout; Envoy's default (15 s) when unset, none when 0.
func routeTimeout(r *route.Route) time.Duration {
	t := r.GetRoute().GetTimeout()
	if t == nil {
		return 15 * time.Second
	}
	return t.AsDuration()
}
