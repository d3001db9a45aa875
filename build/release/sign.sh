#!/usr/bin/env bash
# sign.sh DIR: sign every image of a release with cosign, attach its SBOM as a signed attestation,
# then verify both. build/release/release.sh runs it after writing DIR/images.json (the pushed
# indexes, deploy/matrix's Release) and DIR/sbom/<name>.spdx.json (an SPDX 2.3 document per image).
#
# For each image: `cosign sign` on the index digest (<registry>/<name>@sha256:…, what the bundles
# reference), `cosign attest --type spdxjson` with its SBOM on the same digest, then
# `cosign verify` and `cosign verify-attestation --type spdxjson`: any failure fails the release.
#
# Modes (environment):
#   COSIGN_KEYLESS=1  key-less, for the release workflow: a Fulcio certificate for the job's OIDC
#                     identity (GitHub Actions' ambient token: the job needs `id-token: write`), the
#                     signatures recorded in the public transparency log (Rekor). Verified against
#                     the workflow's identity: COSIGN_CERTIFICATE_IDENTITY, by default
#                     $GITHUB_SERVER_URL/$GITHUB_WORKFLOW_REF (what Fulcio puts in the certificate).
#   COSIGN_KEY=…      that key (a key file or a KMS URI such as gcpkms://…, awskms://…); a file's
#                     password in COSIGN_PASSWORD. Its public key is written to DIR/cosign.pub.
#   neither           a throw-away key pair generated in a temporary folder (empty password): the
#                     private half is deleted on exit, the public half copied to DIR/cosign.pub.
# The key modes need no network but the registry (no Rekor, Fulcio or TUF): see key_flags below.
#
# Other environment: COSIGN (bin/cosign), GO (go), COSIGN_TIMEOUT (per cosign call, 3m).
set -euo pipefail

usage="usage: sign.sh DIR (DIR holds images.json and sbom/<name>.spdx.json)"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
[ -d "$1" ] || { echo "sign.sh: $1: no such folder; $usage" >&2; exit 2; }
dir=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
COSIGN=${COSIGN:-$root/bin/cosign}
GO=${GO:-go}
timeout=${COSIGN_TIMEOUT:-3m}

[ -x "$COSIGN" ] || { echo "sign.sh: cosign not found at $COSIGN (make $root/bin/cosign, or set COSIGN)" >&2; exit 1; }
[ -f "$dir/images.json" ] || { echo "sign.sh: $dir/images.json missing; $usage" >&2; exit 1; }

# "<name> <repository>@<digest>" per image, checked by matrix.ParseRelease (every image once).
refs=$(cd "$root/deploy/matrix" && GOWORK=off "$GO" run ./cmd/matrix refs "$dir/images.json")
while read -r name _; do
	[ -f "$dir/sbom/$name.spdx.json" ] || { echo "sign.sh: $dir/sbom/$name.spdx.json missing (the SBOM of $name)" >&2; exit 1; }
done <<<"$refs"

# stdin from /dev/null: a cosign that wanted a password or a confirmation would otherwise read the
# list of images the loops below feed on.
cosign() { "$COSIGN" --timeout "$timeout" "$@" </dev/null; }

if [ "${COSIGN_KEYLESS:-}" = 1 ]; then
	[ -z "${COSIGN_KEY:-}" ] || { echo "sign.sh: COSIGN_KEYLESS=1 and COSIGN_KEY are exclusive" >&2; exit 2; }
	identity=${COSIGN_CERTIFICATE_IDENTITY:-}
	if [ -z "$identity" ] && [ -n "${GITHUB_WORKFLOW_REF:-}" ]; then
		identity=${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_WORKFLOW_REF
	fi
	[ -n "$identity" ] || { echo "sign.sh: COSIGN_KEYLESS=1 outside GitHub Actions: set COSIGN_CERTIFICATE_IDENTITY (the certificate's identity to verify)" >&2; exit 2; }
	issuer=${COSIGN_CERTIFICATE_OIDC_ISSUER:-https://token.actions.githubusercontent.com}
	echo "sign.sh: key-less (OIDC identity $identity, issuer $issuer; public transparency log)"
	# cosign's defaults: the signing config and trusted root from Sigstore's TUF repository, a
	# Fulcio certificate, a Rekor entry, the Sigstore bundle format. --yes: no confirmation prompt
	# about uploading to the public log (there is no terminal in CI).
	key_flags=(--yes)
	verify_flags=(--certificate-identity "$identity" --certificate-oidc-issuer "$issuer")
else
	if [ -n "${COSIGN_KEY:-}" ]; then
		key=$COSIGN_KEY
		echo "sign.sh: key $key; public key in $dir/cosign.pub"
		cosign public-key --key "$key" --outfile "$dir/cosign.pub"
	else
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		trap 'exit 1' HUP INT TERM # so that the EXIT trap deletes the private key then too
		(cd "$tmp" && COSIGN_PASSWORD='' "$COSIGN" --timeout "$timeout" generate-key-pair </dev/null >/dev/null 2>&1) ||
			{ echo "sign.sh: cosign generate-key-pair failed" >&2; exit 1; }
		key=$tmp/cosign.key
		export COSIGN_PASSWORD=''
		cp "$tmp/cosign.pub" "$dir/cosign.pub"
		echo "sign.sh: throw-away key pair (private half deleted on exit); public key in $dir/cosign.pub"
	fi
	# Signing with a key and nothing else: cosign v3's defaults would fetch Sigstore's signing
	# config (and trusted root) through TUF and upload to Rekor, which needs the internet. With
	# --use-signing-config=false cosign builds its signing config from these flags alone (no TUF;
	# a key needs no Fulcio), and --tlog-upload=false leaves the transparency log out of it. The
	# signature stays in the Sigstore bundle format (cosign v3's default, attached to the digest
	# as an OCI referrer, or under the referrers tag sha256-<hex> where the registry lacks the
	# referrers API), the same format as the key-less release. --tlog-upload is marked deprecated
	# in favour of a --signing-config file without a log, but that path also loads the trusted
	# root through TUF unless given one more file (--trusted-root): the two flags are simpler.
	# Verifying then needs --insecure-ignore-tlog=true: there is no log entry to check.
	key_flags=(--key "$key" --use-signing-config=false --tlog-upload=false --yes)
	verify_flags=(--key "$dir/cosign.pub" --insecure-ignore-tlog=true)
fi

while read -r name ref; do
	echo "sign.sh: $name: sign and attest $ref"
	cosign sign "${key_flags[@]}" "$ref"
	cosign attest "${key_flags[@]}" --type spdxjson --predicate "$dir/sbom/$name.spdx.json" "$ref"
done <<<"$refs"

# cosign prints its checks and an insecure-practice warning (no log entry) for every image: shown
# only when a verification fails. In the bundle format `cosign verify` accepts any bundle the key
# signed for the digest, the SBOM attestation too: its JSON output names each one's type, and
# the signature proper, what `cosign sign` made, is the one of type cosign/sign/v1.
sign_type=https://sigstore.dev/cosign/sign/v1
failed=0
while read -r name ref; do
	digest=${ref##*@}
	if ! out=$(cosign verify "${verify_flags[@]}" --output json "$ref" 2>&1); then
		printf '%s\nsign.sh: %s: cosign verify FAILED on %s\n' "$out" "$name" "$ref" >&2
		failed=1
	elif ! grep -qF "\"docker-manifest-digest\":\"$digest\"},\"type\":\"$sign_type\"" <<<"$out"; then
		printf '%s\nsign.sh: %s: cosign verify found no signature of type %s for %s\n' "$out" "$name" "$sign_type" "$ref" >&2
		failed=1
	elif ! out=$(cosign verify-attestation "${verify_flags[@]}" --type spdxjson "$ref" 2>&1); then
		printf '%s\nsign.sh: %s: cosign verify-attestation --type spdxjson FAILED on %s\n' "$out" "$name" "$ref" >&2
		failed=1
	else
		echo "sign.sh: $name: signature and SBOM attestation verified ($ref)"
	fi
done <<<"$refs"
exit "$failed"
