#!/usr/bin/env bash
# Lays the real Trivy reports the tests read into DIR (default ../shared/fixtures/trivy), from the
# public repositories and commits listed in scripts/trivy-fixtures.tsv, and checks each file's git
# blob id so the tests run on exactly the bytes they were written against. For machines where the
# fixtures are not laid beside the clone (the GitHub workflow); where they are, it only verifies.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-../shared/fixtures/trivy}
manifest=scripts/trivy-fixtures.tsv
failed=0
while IFS=$'\t' read -r file repo commit path blob; do
  case "$file" in ''|'#'*) continue ;; esac
  target="$dest/$file"
  if [ ! -f "$target" ]; then
    mkdir -p "$(dirname "$target")"
    curl -fsSL --retry 3 -o "$target" "https://raw.githubusercontent.com/$repo/$commit/$path"
  fi
  actual=$(git hash-object "$target")
  if [ "$actual" != "$blob" ]; then
    echo "fixture $file: git blob $actual, expected $blob ($repo@$commit:$path)" >&2
    failed=1
  fi
done < "$manifest"
[ "$failed" -eq 0 ] && echo "Trivy fixtures in $dest match their published blobs"
exit "$failed"
