package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1"
	telemetry "istio.io/api/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest, strictly decoded.
type Object struct {
	APIVersion string
	Kind       string
	Meta       metav1.ObjectMeta
	// Typed is a pointer to the Kubernetes struct (*appsv1.Deployment, *gatewayv1.HTTPRoute, ...)
	// or, for Istio resources, the spec as its istio.io/api protobuf message
	// (*networking.VirtualService, ...).
	Typed any
	// Overlays are, for a ConfigMap a Gateway names as its infrastructure parameters, the
	// overlays istiod applies to what it generates for the Gateway, by key ("service":
	// *corev1.Service, "deployment": *appsv1.Deployment, ...), strictly decoded.
	Overlays map[string]any
	// YAML is the document as rendered.
	YAML []byte
}

// ID names the object in messages: Kind namespace/name.
func (o Object) ID() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Meta.Namespace, o.Meta.Name) }

// kubeTypes are the Kubernetes kinds meshdemo renders, by apiVersion/kind.
var kubeTypes = map[string]func() any{
	"v1/Namespace":        func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":   func() any { return &corev1.ServiceAccount{} },
	"v1/Service":          func() any { return &corev1.Service{} },
	"v1/Secret":           func() any { return &corev1.Secret{} },
	"apps/v1/Deployment":  func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet": func() any { return &appsv1.StatefulSet{} },
	// The load generator's Job (loadtest/deploy).
	"batch/v1/Job": func() any { return &batchv1.Job{} },
	// Defence in depth under the mesh (istio/mesh, istio/networkpolicy, istio/ambient/base) and
	// voluntary-disruption budgets for workloads with more than one replica.
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	// A Gateway API Gateway's infrastructure parameters (gateway.networking.k8s.io Gateways).
	"v1/ConfigMap": func() any { return &corev1.ConfigMap{} },
	// The Kubernetes Gateway API at the version the pinned Istio uses (sigs.k8s.io/gateway-api),
	// standard and experimental fields alike: the Go types hold both channels.
	"gateway.networking.k8s.io/v1/Gateway":   func() any { return &gatewayv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute": func() any { return &gatewayv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1/GRPCRoute": func() any { return &gatewayv1.GRPCRoute{} },
}

// gatewayOverlays are the keys istiod's deployment controller reads from a Gateway's parameters
// ConfigMap, with the type each overlay patches (pilot/pkg/config/kube/gatewaycommon,
// applyOverlay); istiod rejects any other key.
var gatewayOverlays = map[string]func() any{
	"deployment":              func() any { return &appsv1.Deployment{} },
	"service":                 func() any { return &corev1.Service{} },
	"serviceAccount":          func() any { return &corev1.ServiceAccount{} },
	"horizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"podDisruptionBudget":     func() any { return &policyv1.PodDisruptionBudget{} },
}

// istioTypes are the Istio kinds, at the v1 APIs only (EnvoyFilter aside): a v1alpha3 or v1beta1
// apiVersion has no entry and fails to decode.
var istioTypes = map[string]func() proto.Message{
	"networking.istio.io/v1/Gateway":           func() proto.Message { return &networking.Gateway{} },
	"networking.istio.io/v1/VirtualService":    func() proto.Message { return &networking.VirtualService{} },
	"networking.istio.io/v1/DestinationRule":   func() proto.Message { return &networking.DestinationRule{} },
	"security.istio.io/v1/PeerAuthentication":  func() proto.Message { return &security.PeerAuthentication{} },
	"security.istio.io/v1/AuthorizationPolicy": func() proto.Message { return &security.AuthorizationPolicy{} },
	"telemetry.istio.io/v1/Telemetry":          func() proto.Message { return &telemetry.Telemetry{} },
	// EnvoyFilter has no v1: v1alpha3 is its only version. Its patch values are decoded further,
	// into Envoy's own types (decodeEnvoyFilter).
	"networking.istio.io/v1alpha3/EnvoyFilter": func() proto.Message { return &networkingv1alpha3.EnvoyFilter{} },
}

// istioEnvelope is everything an Istio resource may hold besides its spec. No status: we
// render desired state only.
type istioEnvelope struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

// Decode splits a multi-document YAML stream and strictly decodes every document: unknown or
// duplicate fields fail, for Kubernetes objects through the typed API structs, for Istio specs
// through protojson with DiscardUnknown false (the istio.io/client-go types would accept them).
func Decode(stream []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []Object
	var errs []error
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(bytes.TrimSpace(doc)) == "---" {
			continue
		}
		o, err := decodeOne(doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, o)
	}
	errs = append(errs, decodeGatewayParameters(out)...)
	return out, errors.Join(errs...)
}

// decodeGatewayParameters strictly decodes the overlays of every ConfigMap a Gateway names as
// its infrastructure parameters (istiod patches the Gateway's generated Deployment, Service, ...
// with them, strategic merge): a misspelt field would otherwise reach the cluster as text and be
// dropped. A parametersRef to a ConfigMap the render lacks is a rule violation (checkGatewayAPIRefs).
func decodeGatewayParameters(objs []Object) []error {
	var errs []error
	for _, o := range objs {
		gw, ok := o.Typed.(*gatewayv1.Gateway)
		if !ok || gw.Spec.Infrastructure == nil || gw.Spec.Infrastructure.ParametersRef == nil {
			continue
		}
		ref := gw.Spec.Infrastructure.ParametersRef
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			errs = append(errs, fmt.Errorf("%s: infrastructure.parametersRef %s/%s: istiod takes a ConfigMap only", o.ID(), ref.Group, ref.Kind))
			continue
		}
		for i := range objs {
			cm, ok := objs[i].Typed.(*corev1.ConfigMap)
			if !ok || cm.Namespace != gw.Namespace || cm.Name != ref.Name || objs[i].Overlays != nil {
				continue
			}
			objs[i].Overlays = map[string]any{}
			if len(cm.BinaryData) > 0 {
				errs = append(errs, fmt.Errorf("%s: binaryData: istiod reads overlays from data only", objs[i].ID()))
			}
			for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
				mk, ok := gatewayOverlays[key]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: data.%s: istiod supports the overlays %v only", objs[i].ID(), key, slices.Sorted(maps.Keys(gatewayOverlays))))
					continue
				}
				typed := mk()
				if err := strictUnmarshal([]byte(cm.Data[key]), typed); err != nil {
					errs = append(errs, fmt.Errorf("%s: data.%s: %w", objs[i].ID(), key, err))
					continue
				}
				objs[i].Overlays[key] = typed
			}
		}
	}
	return errs
}

func decodeOne(doc []byte) (Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return Object{}, fmt.Errorf("not a manifest: %w", err)
	}
	key := head.APIVersion + "/" + head.Kind
	id := fmt.Sprintf("%s %s/%s", key, head.Metadata.Namespace, head.Metadata.Name)
	o := Object{APIVersion: head.APIVersion, Kind: head.Kind, YAML: doc}

	if mk, ok := kubeTypes[key]; ok {
		typed := mk()
		if err := strictUnmarshal(doc, typed); err != nil {
			return Object{}, fmt.Errorf("%s: %w", id, err)
		}
		o.Typed = typed
		o.Meta = objectMeta(typed)
		return o, nil
	}
	if mk, ok := istioTypes[key]; ok {
		var env istioEnvelope
		if err := strictUnmarshal(doc, &env); err != nil {
			return Object{}, fmt.Errorf("%s: %w", id, err)
		}
		spec := mk()
		if len(env.Spec) == 0 {
			return Object{}, fmt.Errorf("%s: no spec", id)
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(env.Spec, spec); err != nil {
			return Object{}, fmt.Errorf("%s: spec: %w", id, err)
		}
		if ef, ok := spec.(*networkingv1alpha3.EnvoyFilter); ok {
			if err := decodeEnvoyFilter(ef); err != nil {
				return Object{}, fmt.Errorf("%s: spec: %w", id, err)
			}
		}
		o.Typed = spec
		o.Meta = env.Metadata
		return o, nil
	}
	return Object{}, fmt.Errorf("%s: no strict decoder for %s (unexpected kind, or an Istio API other than v1)", id, key)
}

// strictUnmarshal decodes a YAML document into a Kubernetes type the way the API server's strict
// field validation does: field names match case-sensitively (encoding/json, and so
// yaml.UnmarshalStrict, would take `nodeport` for `nodePort`), and unknown or duplicate fields
// are errors (sigs.k8s.io/json, the decoder of k8s.io/apimachinery).
func strictUnmarshal(doc []byte, into any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func objectMeta(typed any) metav1.ObjectMeta {
	if m, ok := typed.(metav1.ObjectMetaAccessor); ok {
		return *m.GetObjectMeta().(*metav1.ObjectMeta)
	}
	return metav1.ObjectMeta{}
}
