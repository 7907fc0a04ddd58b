#!/usr/bin/env bash
# Renders the release's manifests into OUTDIR: install.yaml (manifests/base: CRD, namespace, RBAC,
# Deployment, PDB, Service, NetworkPolicies) and install-<component>.yaml for each directory of
# manifests/components (the base plus that component), every one with the operator's image pinned by
# the digest that was pushed, so `kubectl apply -f` of a release asset runs exactly the signed image.
# Used by .github/workflows/release.yml; test/release checks its output with the real kubectl.
#
#   scripts/release-manifests.sh ghcr.io/OWNER/imagescan-operator@sha256:<64 hex> OUTDIR
set -euo pipefail

image=${1:-}
out=${2:-}
if [[ ! "$image" =~ ^([a-z0-9][a-z0-9._/-]*[a-z0-9])@(sha256:[0-9a-f]{64})$ || -z "$out" ]]; then
  echo "usage: $0 REGISTRY/NAME@sha256:<64 hex> OUTDIR (the image by digest, never by tag)" >&2
  exit 2
fi
name=${BASH_REMATCH[1]}
digest=${BASH_REMATCH[2]}

repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The name the base gives the image (its `images:` newName); the overlay replaces that one.
base_image=$(sed -n 's/^ *newName: *//p' "$repo/manifests/base/kustomization.yaml" | head -n 1)
[ -n "$base_image" ] || { echo "$0: no newName in manifests/base/kustomization.yaml" >&2; exit 1; }

# kustomize loads bases only by paths below or beside the overlay, so the overlay lives in the clone.
overlay=$(mktemp -d "$repo/.release-overlay.XXXXXX")
trap 'rm -rf "$overlay"' EXIT

render() { # render OUTFILE [COMPONENT]
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [../manifests/base]"
    [ -z "${2:-}" ] || echo "components: [../manifests/components/$2]"
    echo "images:"
    echo "  - name: $base_image"
    echo "    newName: $name"
    echo "    digest: $digest"
  } > "$overlay/kustomization.yaml"
  kubectl kustomize "$overlay" > "$out/$1"
}

render install.yaml
for dir in "$repo"/manifests/components/*/; do
  component=$(basename "$dir")
  render "install-$component.yaml" "$component"
done
ls "$out"
