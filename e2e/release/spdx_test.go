package release

import (
	"encoding/base64"
	"strings"
	"testing"
)

// statement is the in-toto statement cosign v3.1.3 signed for `cosign attest --type spdxjson` of a
// small SPDX document (recorded from its verify-attestation output against docker-registry).
const statement = `{"_type":"https://in-toto.io/Statement/v0.1", "subject":[{"name":"127.0.0.1:57931/meshdemo/client", "digest":{"sha256":"75f0d3d75716124212aeb55be9588a46b5526b8c8a001f69090c8e90671ee0c2"}}], "predicateType":"https://spdx.dev/Document", "predicate":{"SPDXID":"SPDXRef-DOCUMENT", "creationInfo":{"created":"2026-12-06T00:00:00Z", "creators":["Tool: signing-proof"]}, "dataLicense":"CC0-1.0", "documentNamespace":"https://meshdemo.example/spdx/client-v0.0.0-test", "name":"client", "packages":[{"SPDXID":"SPDXRef-Package-client", "downloadLocation":"NOASSERTION", "name":"client"}], "spdxVersion":"SPDX-2.3"}}`

const digest = "sha256:75f0d3d75716124212aeb55be9588a46b5526b8c8a001f69090c8e90671ee0c2"

// verifyOutput is what verify-attestation prints, stdout and stderr together, around a payload.
func verifyOutput(payload string) string {
	return `{"payload":"` + payload + `","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEQCIBz7"}]}` + "\n\n" +
		"WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the attestation.\n" +
		"Verification for 127.0.0.1:57931/meshdemo/client@" + digest + " --\n"
}

func TestSPDXAttestation(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	if err := spdxAttestation(verifyOutput(b64(statement)), digest); err != nil {
		t.Fatalf("the recorded attestation: %v", err)
	}
	for _, c := range []struct{ name, out, digest, want string }{
		{"another image", verifyOutput(b64(statement)), "sha256:" + strings.Repeat("0", 64), "subject is not"},
		{"another predicate", verifyOutput(b64(strings.Replace(statement, "https://spdx.dev/Document", "https://cyclonedx.org/bom", 1))), digest, "predicate type"},
		{"not SPDX 2", verifyOutput(b64(strings.Replace(statement, `"SPDX-2.3"`, `"SPDX-3.0"`, 1))), digest, "not an SPDX 2.x"},
		{"no packages", verifyOutput(b64(strings.Replace(statement, `"packages":[{"SPDXID":"SPDXRef-Package-client", "downloadLocation":"NOASSERTION", "name":"client"}]`, `"packages":[]`, 1))), digest, "not an SPDX 2.x"},
		{"payload not base64", verifyOutput("not base64!"), digest, "not base64"},
		{"payload not a statement", verifyOutput(b64("[1]")), digest, "not an in-toto statement"},
		{"no envelope", "Error: no matching attestations\n", digest, "no DSSE envelope"},
	} {
		err := spdxAttestation(c.out, c.digest)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
