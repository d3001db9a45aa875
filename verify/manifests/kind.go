package manifests

import (
	"fmt"
	"os"
	"path/filepath"

	kind "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// KindClusterFile is the kind cluster configuration, relative to the repository root.
const KindClusterFile = "build/kind/cluster.yaml"

// KindPublishedNodePorts are the node ports the kind cluster publishes on the host
// (extraPortMappings of build/kind/cluster.yaml, decoded strictly into kind's own types): the only
// ports through which anything in the cluster answers on the host, kind having no load balancer.
func KindPublishedNodePorts(root string) ([]int32, error) {
	data, err := os.ReadFile(filepath.Join(root, KindClusterFile))
	if err != nil {
		return nil, err
	}
	var c kind.Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", KindClusterFile, err)
	}
	var ports []int32
	for _, n := range c.Nodes {
		for _, m := range n.ExtraPortMappings {
			ports = append(ports, m.ContainerPort)
		}
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("%s publishes no port (extraPortMappings)", KindClusterFile)
	}
	return ports, nil
}
