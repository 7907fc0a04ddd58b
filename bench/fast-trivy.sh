#!/bin/bash
# A Trivy stand-in for the benchmark that costs almost no CPU: it sleeps BENCH_TRIVY_SLEEP_MS per scan
# and copies the real fixture mapped to the image's repository to --output. The Node stub
# (test/trivy-stub/trivy) spends ~0.13 CPU-seconds per run on Node's start-up alone, which on a
# 2-core machine caps 1,000 scans at ~65 s whatever the operator does (`--stub node` uses it anyway).
# It answers only what the operator runs: `image … --output FILE REF`, `image --download-db-only` /
# `--download-java-db-only`, `convert … --output SBOM REPORT`, `sbom … --output FILE SBOM` and
# `version --format json`. It logs JSON lines like the Node stub (start/end with pid, t, argv) to
# BENCH_TRIVY_LOG, so the same counting applies. Its "SBOM" is one line naming the fixture (the image
# run leaves the fixture's path beside its report and under the digest's name for convert); `sbom`
# replays that fixture.
# Environment: BENCH_TRIVY_MAP_DIR (one file or symlink per repository, '/' written as '_'),
# BENCH_TRIVY_LOG, BENCH_TRIVY_SLEEP_MS, BENCH_TRIVY_SBOM_SLEEP_MS, BENCH_TRIVY_DB_UPDATED_AT_FILE (its
# first line is the UpdatedAt of the next DB download; `now`: the download time; absent: the hour).
set -u
# Builtins and `printf -v` rather than $(...): each fork here is CPU taken from the operator being
# measured, on the same cores.
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    NOW_MS=${t:0:${#t}-3}
  else
    NOW_MS=$(date +%s%3N)
  fi
}
json_argv() {
  local out='' a
  for a in "$@"; do out+="\"${a//\"/\\\"}\","; done
  ARGV_JSON="[${out%,}]"
}
log() { printf '%s\n' "$1" >> "${BENCH_TRIVY_LOG:-/dev/null}"; }

now_ms
json_argv "$@"
log "{\"event\":\"start\",\"pid\":$$,\"t\":$NOW_MS,\"argv\":$ARGV_JSON}"
cmd="${1:-}"
shift || true
output='' cache='' ref='' download=''
while [ $# -gt 0 ]; do
  case "$1" in
    --output) output="$2"; shift 2 ;;
    --cache-dir) cache="$2"; shift 2 ;;
    --download-db-only) download=db; shift ;;
    --download-java-db-only) download=java-db; shift ;;
    --format|--scanners|--image-src|--platform|--cache-backend|--timeout|--severity|--db-repository|--java-db-repository|--server|--token-header|--ignore-policy) shift 2 ;;
    --*) shift ;;
    *) ref="$1"; shift ;;
  esac
done

finish() {
  now_ms
  log "{\"event\":\"end\",\"pid\":$$,\"t\":$NOW_MS,\"exitCode\":$1}"
  exit "$1"
}

if [ "$cmd" = version ]; then
  meta="$cache/db/metadata.json"
  if [ -f "$meta" ]; then printf '{"Version":"0.74.0","VulnerabilityDB":%s}\n' "$(<"$meta")"; else printf '{"Version":"0.74.0"}\n'; fi
  finish 0
fi
if [ -n "$download" ]; then
  mkdir -p "$cache/$download"
  stamp=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  updated=''
  if [ -n "${BENCH_TRIVY_DB_UPDATED_AT_FILE:-}" ] && [ -f "$BENCH_TRIVY_DB_UPDATED_AT_FILE" ]; then read -r updated < "$BENCH_TRIVY_DB_UPDATED_AT_FILE"; fi
  if [ "$updated" = now ]; then updated="$stamp"; elif [ -z "$updated" ]; then updated=$(date -u +%Y-%m-%dT%H:00:00Z); fi
  printf '{"Version":2,"UpdatedAt":"%s","DownloadedAt":"%s","NextUpdate":"%s"}' "$updated" "$stamp" "$stamp" > "$cache/$download/metadata.json"
  finish 0
fi
if [ "$cmd" = convert ]; then
  fixture=''
  if [ -f "$ref.fixture" ]; then read -r fixture < "$ref.fixture"; fi
  # A report the operator held on its cache volume is named after its digest (sha256-<hex>.….json).
  name="${ref##*/}"
  if [ -z "$fixture" ] && [ -f "${BENCH_TRIVY_MAP_DIR:-}/${name%%.*}" ]; then read -r fixture < "$BENCH_TRIVY_MAP_DIR/${name%%.*}"; fi
  if [ -z "$fixture" ]; then
    printf '%s\tFATAL\tFatal error\tfile open error: open %s: no such file or directory\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ref" >&2
    finish 1
  fi
  printf '{"bomFormat":"CycloneDX","x-fast-trivy-fixture":"%s"}\n' "$fixture" > "$output"
  finish 0
fi
if [ "$cmd" = sbom ]; then
  line=''
  if [ -f "$ref" ]; then read -r line < "$ref"; fi
  fixture="${line#*\"x-fast-trivy-fixture\":\"}"
  fixture="${fixture%\"\}}"
  if [ "$fixture" = "$line" ] || [ ! -f "$fixture" ]; then
    printf '%s\tFATAL\tFatal error\trun error: sbom scan error: scan error: scan failed: failed analysis: SBOM decode error: unknown scanning is not yet supported\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
    finish 1
  fi
  ms=${BENCH_TRIVY_SBOM_SLEEP_MS:-0}
  printf -v seconds '%d.%03d' $((ms / 1000)) $((ms % 1000))
  if [ "$ms" -gt 0 ]; then read -r -t "$seconds" _ <> <(:) || true; fi
  cp "$fixture" "$output"
  finish 0
fi
repo="${ref%@*}"
# A reference by tag (the operator scans an image an admission review named before it runs): drop the
# tag, which follows a colon in the last path segment (a colon before a slash is a registry port).
if [ "$repo" = "$ref" ]; then
  case "${ref##*/}" in *:*) repo="${ref%:*}" ;; esac
fi
fixture="${BENCH_TRIVY_MAP_DIR:-}/${repo//\//_}"
if [ ! -e "$fixture" ]; then
  printf '%s\tFATAL\tFatal error\trun error: %s: MANIFEST_UNKNOWN: manifest unknown\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ref" >&2
  finish 1
fi
ms=${BENCH_TRIVY_SLEEP_MS:-0}
printf -v seconds '%d.%03d' $((ms / 1000)) $((ms % 1000))
# `read -t` on a pipe that never gets a line sleeps without starting a `sleep` process.
if [ "$ms" -gt 0 ]; then read -r -t "$seconds" _ <> <(:) || true; fi
cp "$fixture" "$output"
# For `convert`: the fixture this report replays, beside the report and by the digest (the operator
# removes the scan's folder after the scan, and may have copied the report to its cache volume).
printf '%s\n' "$fixture" > "$output.fixture"
digest="${ref##*@}"
if [ "$digest" != "$ref" ]; then printf '%s\n' "$fixture" > "${BENCH_TRIVY_MAP_DIR:-}/${digest/:/-}"; fi
finish 0
