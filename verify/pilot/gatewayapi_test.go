package pilot

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/gateway-api/pkg/consts"

	kubelib "istio.io/istio/pkg/kube"
)

// withBundleVersion makes every CRD the fake API server creates carry the bundle-version
// annotation of the Gateway API's CRD manifests (v1.6.0, what `make istio-install` applies).
// istiod ignores GRPCRoutes (and TCPRoutes, TLSRoutes) whose CRD lacks it
// (pkg/kube/kclient/crdwatcher.go, minimumVersionFilter), and pilot/test/xds's fake server
// creates its CRDs without annotations (clienttest.MakeCRD).
//
// It does so as the CRDs are created, before any controller starts, as in a cluster where the
// CRDs were applied before istiod: nothing has to wait for a late CRD event.
func withBundleVersion(c kubelib.Client) {
	fmc, ok := c.Metadata().(*metadatafake.FakeMetadataClient)
	if !ok {
		panic("the fake server's metadata client is no longer metadata/fake's: the CRD annotation hook needs a new home")
	}
	annotate := func(action k8stesting.Action) (bool, runtime.Object, error) {
		var obj runtime.Object
		switch a := action.(type) {
		case k8stesting.CreateAction:
			obj = a.GetObject()
		case k8stesting.UpdateAction:
			obj = a.GetObject()
		}
		if crd, ok := obj.(*metav1.PartialObjectMetadata); ok {
			if crd.Annotations == nil {
				crd.Annotations = map[string]string{}
			}
			crd.Annotations[consts.BundleVersionAnnotation] = consts.BundleVersion
		}
		return false, nil, nil // let the object tracker store it
	}
	fmc.PrependReactor("create", "customresourcedefinitions", annotate)
	fmc.PrependReactor("update", "customresourcedefinitions", annotate)
}
