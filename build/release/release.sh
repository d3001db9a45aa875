#!/usr/bin/env bash
# release.sh: build, push, sign and bundle one meshdemo release. `make release` runs it:
#
#   make release REGISTRY=<host[:port]/path> VERSION=<vX.Y.Z>
#
# 1. build/release's command builds every image of deploy/matrix (Images) for linux/amd64 and
#    linux/arm64, reproducibly (times from the commit, never the clock), pushes each index by
#    digest (and tags it VERSION), and writes $RELEASE_DIR/images.json and an SPDX SBOM per image.
# 2. verify/cmd/render -release renders the 42 install bundles (every scenario in every flavour)
#    from the Kustomize sources through deploy/components/release, images by digest.
# 3. build/release/sign.sh signs every index with cosign and attaches its SBOM as an attestation.
# 4. SHA256SUMS over the bundles; compose.release.yaml (compose.yaml's images by digest);
#    VERIFY.md (the commands that check all of it).
#
# Environment: REGISTRY and VERSION (required); RELEASE_DIR (dist/release); GO (go); COSIGN
# (bin/cosign); COSIGN_KEY / COSIGN_PASSWORD, or COSIGN_KEYLESS=1 (see sign.sh): without either,
# a throw-away key pair signs and its public key is $RELEASE_DIR/cosign.pub.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

GO=${GO:-go}
COSIGN=${COSIGN:-$root/bin/cosign}
RELEASE_DIR=${RELEASE_DIR:-$root/dist/release}
: "${REGISTRY:?REGISTRY=<host[:port]/path> is required, e.g. make release REGISTRY=ghcr.io/meshdemo VERSION=v1.0.0}"
: "${VERSION:?VERSION=<vX.Y.Z> is required, e.g. make release REGISTRY=ghcr.io/meshdemo VERSION=v1.0.0}"
export COSIGN GO

case $RELEASE_DIR in /*) ;; *) RELEASE_DIR=$root/$RELEASE_DIR ;; esac
# A release folder holds one release: nothing of an earlier one may end up in SHA256SUMS.
rm -rf "$RELEASE_DIR"
mkdir -p "$RELEASE_DIR"

echo "==> images: build, push to $REGISTRY by digest"
(cd build/release && GOWORK=off "$GO" run ./cmd/release -root "$root" -registry "$REGISTRY" -version "$VERSION" -out "$RELEASE_DIR")

echo "==> bundles: 42 install files, images by digest"
(cd verify && GOWORK=off "$GO" run ./cmd/render -root "$root" -release "$RELEASE_DIR/images.json" -out "$RELEASE_DIR")

# "<name> <repository>@<digest>" per image, from images.json (checked by matrix.ParseRelease).
refs=$(cd deploy/matrix && GOWORK=off "$GO" run ./cmd/matrix refs "$RELEASE_DIR/images.json")

echo "==> sign: cosign signature and SBOM attestation per image"
build/release/sign.sh "$RELEASE_DIR"

(cd "$RELEASE_DIR" && sha256sum meshdemo-*.yaml >SHA256SUMS)

{
	echo "# docker compose with this release's images, by digest (no build, no local images):"
	echo "#   docker compose -f compose.yaml -f compose.release.yaml up -d --no-build"
	echo "services:"
	while read -r name ref; do
		[ "$name" = loadtest ] && continue
		printf '  %s:\n    image: %s\n' "$name" "$ref"
	done <<<"$refs"
} >"$RELEASE_DIR/compose.release.yaml"

if [ "${COSIGN_KEYLESS:-}" = 1 ]; then
	# The release workflow signs key-less: the certificate names the workflow and the tag.
	verify_flags="--certificate-identity-regexp '^https://github.com/meshdemo/meshdemo/.github/workflows/release.yml@refs/tags/v' --certificate-oidc-issuer https://token.actions.githubusercontent.com"
elif [ -n "${COSIGN_KEY:-}" ]; then
	verify_flags="--key <the release's public key>"
else
	verify_flags="--key cosign.pub --insecure-ignore-tlog=true"
fi
{
	echo "# Verifying meshdemo $VERSION"
	echo
	echo "Bundles (in the folder holding them and SHA256SUMS):"
	echo
	echo '    sha256sum -c SHA256SUMS'
	echo
	echo "Images: the signature, then the SPDX SBOM attestation:"
	echo
	while read -r name ref; do
		echo "    # $name"
		echo "    cosign verify $verify_flags $ref"
		echo "    cosign verify-attestation --type spdxjson $verify_flags $ref"
	done <<<"$refs"
} >"$RELEASE_DIR/VERIFY.md"

bundles=$(find "$RELEASE_DIR" -maxdepth 1 -name "meshdemo-*.yaml" | wc -l)
echo "==> $RELEASE_DIR: $bundles bundles, SHA256SUMS, images.json, sbom/, compose.release.yaml, VERIFY.md$( [ -f "$RELEASE_DIR/cosign.pub" ] && echo ', cosign.pub')"
