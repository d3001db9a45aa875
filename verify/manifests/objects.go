package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1"
	telemetry "istio.io/api/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest, strictly decoded.
type Object struct {
	APIVersion string
	Kind       string
	Meta       metav1.ObjectMeta
	// Typed is a pointer to the Kubernetes struct (*appsv1.Deployment, ...) or, for Istio
	// resources, the spec as its istio.io/api protobuf message (*networking.VirtualService, ...).
	Typed any
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
	return out, errors.Join(errs...)
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
		if err := yaml.UnmarshalStrict(doc, typed); err != nil {
			return Object{}, fmt.Errorf("%s: %w", id, err)
		}
		o.Typed = typed
		o.Meta = objectMeta(typed)
		return o, nil
	}
	if mk, ok := istioTypes[key]; ok {
		var env istioEnvelope
		if err := yaml.UnmarshalStrict(doc, &env); err != nil {
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

func objectMeta(typed any) metav1.ObjectMeta {
	if m, ok := typed.(metav1.ObjectMetaAccessor); ok {
		return *m.GetObjectMeta().(*metav1.ObjectMeta)
	}
	return metav1.ObjectMeta{}
}
