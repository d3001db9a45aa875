package manifests

import (
	"errors"
	"fmt"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	// The Envoy filters meshdemo's EnvoyFilters insert. A typed_config naming any other type
	// fails to decode ("unable to resolve"): add its package here when a scenario needs it.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
)

// patchValues is the Envoy message an EnvoyFilter patch value holds, by what it applies to.
// Only the kinds meshdemo uses have an entry; any other applyTo is rejected.
var patchValues = map[networkingv1alpha3.EnvoyFilter_ApplyTo]func() proto.Message{
	networkingv1alpha3.EnvoyFilter_HTTP_FILTER: func() proto.Message { return &hcm.HttpFilter{} },
}

// validator is what protoc-gen-validate generates on every Envoy message: the constraints
// Envoy itself enforces when it loads the configuration (a zero fill_interval, say).
type validator interface{ ValidateAll() error }

// decodeEnvoyFilter decodes every patch value of an EnvoyFilter strictly into the Envoy message
// it becomes (the go-control-plane types istiod uses), typed_config included, and runs Envoy's
// own field constraints on both. An EnvoyFilter's spec keeps patch values as an untyped Struct,
// so without this a misspelt Envoy field would pass every other check and be dropped by Envoy.
func decodeEnvoyFilter(ef *networkingv1alpha3.EnvoyFilter) error {
	var errs []error
	for i, cp := range ef.GetConfigPatches() {
		mk, ok := patchValues[cp.GetApplyTo()]
		if !ok {
			errs = append(errs, fmt.Errorf("configPatches[%d]: no strict decoder for applyTo %s", i, cp.GetApplyTo()))
			continue
		}
		raw, err := protojson.Marshal(cp.GetPatch().GetValue())
		if err != nil {
			errs = append(errs, fmt.Errorf("configPatches[%d]: %w", i, err))
			continue
		}
		msg := mk()
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(raw, msg); err != nil {
			errs = append(errs, fmt.Errorf("configPatches[%d]: patch value as %s: %w", i, msg.ProtoReflect().Descriptor().FullName(), err))
			continue
		}
		if err := validate(msg); err != nil {
			errs = append(errs, fmt.Errorf("configPatches[%d]: %w", i, err))
		}
		if f, ok := msg.(*hcm.HttpFilter); ok {
			if f.GetTypedConfig() == nil {
				errs = append(errs, fmt.Errorf("configPatches[%d]: HTTP filter %q has no typed_config", i, f.GetName()))
				continue
			}
			inner, err := f.GetTypedConfig().UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("configPatches[%d]: typed_config: %w", i, err))
				continue
			}
			if err := validate(inner); err != nil {
				errs = append(errs, fmt.Errorf("configPatches[%d]: typed_config: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func validate(m proto.Message) error {
	if v, ok := m.(validator); ok {
		return v.ValidateAll()
	}
	return nil
}
