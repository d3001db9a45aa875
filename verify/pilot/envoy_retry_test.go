package pilot

import (
	"slices"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// What Envoy does with a route's RetryPolicy, read from Envoy's own source (envoyproxy/envoy,
// source/common/router/retry_state_impl.cc and router.cc, a recent main-branch revision: the one
// with the reset-before-request and http3-post-connect-failure conditions and
// Filter::onPerTryTimeoutCommon; older revisions, e.g. e78906c5, decide the same). Comparing the
// retry_on string with an expected one says what istiod wrote; these two functions say what
// Envoy will do with it, which is what a user sees. Hedging (hedge_policy.hedge_on_per_try_timeout
// makes Envoy retry every per-try timeout, RetryStateImpl::shouldHedgeRetryPerTryTimeout) is left
// out: the pinned Istio never sets a hedge policy (no HedgePolicy anywhere under pilot/).

// retriesStatus reports whether Envoy retries an upstream answer with HTTP status under p:
// RetryStateImpl::wouldRetryFromHeaders. `5xx` retries 500-599 (Http::CodeUtility::is5xx),
// `gateway-error` 502, 503 and 504 (isGatewayError), `retriable-4xx` 409 only, and
// `retriable-status-codes` the codes of retriable_status_codes. The gRPC conditions (cancelled,
// unavailable, ...) look at grpc-status, not the HTTP status, and retry nothing here.
func retriesStatus(p *route.RetryPolicy, status uint32) bool {
	if !mayRetry(p) {
		return false
	}
	for _, on := range retryConditions(p) {
		switch on {
		case "5xx":
			if status >= 500 && status < 600 {
				return true
			}
		case "gateway-error":
			if status == 502 || status == 503 || status == 504 {
				return true
			}
		case "retriable-4xx":
			if status == 409 {
				return true
			}
		case "retriable-status-codes":
			if slices.Contains(p.GetRetriableStatusCodes(), status) {
				return true
			}
		}
	}
	return false
}

// retriesPerTryTimeout reports whether Envoy retries a try that p's per_try_timeout cut short.
// router.cc, Filter::onPerTryTimeoutCommon: without hedging, the timed-out upstream stream is
// reset and Filter::maybeRetryReset asks RetryStateImpl::shouldRetryReset with the reason
// LocalReset. RetryStateImpl::wouldRetryFromReset then retries a LocalReset only under `reset`,
// `5xx` or `gateway-error` ("we count an upstream reset as a 5xx"); `connect-failure` covers
// connection failures, `refused-stream` a REFUSED_STREAM from upstream, and
// `reset-before-request` a reset before any byte went upstream, none of which a per-try timeout
// is (its timer runs once the request has been sent). So a route whose retry_on lacks all
// three answers 504 after the first timed-out try, however many attempts it allows.
func retriesPerTryTimeout(p *route.RetryPolicy) bool {
	if !mayRetry(p) || p.GetPerTryTimeout().AsDuration() <= 0 {
		return false
	}
	for _, on := range retryConditions(p) {
		if on == "reset" || on == "5xx" || on == "gateway-error" {
			return true
		}
	}
	return false
}

// mayRetry: a policy allows a retry unless num_retries is explicitly 0 (unset means 1,
// route_components.proto).
func mayRetry(p *route.RetryPolicy) bool {
	return p != nil && (p.GetNumRetries() == nil || p.GetNumRetries().GetValue() > 0)
}

// retryConditions splits retry_on as Envoy does (StringUtil::splitToken, trimming blanks).
func retryConditions(p *route.RetryPolicy) []string {
	var out []string
	for _, on := range strings.Split(p.GetRetryOn(), ",") {
		if on = strings.TrimSpace(on); on != "" {
			out = append(out, on)
		}
	}
	return out
}
