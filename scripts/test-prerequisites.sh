#!/usr/bin/env bash
# First step of `npm test`. The alert and incident suites run the real Prometheus, promtool,
# Alertmanager and amtool, the e2e suites the real kubectl. What is missing of the first four is
# installed from Debian's packages when this machine allows it (apt-get, and root or passwordless
# sudo); otherwise the run stops here, before any suite, with one line that says what to install.
# Never a skip: a run that passes has run every suite.
set -euo pipefail

stop() {
  echo "npm test: $*" >&2
  exit 1
}

# Debian packages the suites need that are not installed (promtool comes with prometheus, amtool
# with prometheus-alertmanager; upstream's alertmanager binary does as well as Debian's name).
missing_packages() {
  local missing=()
  { command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
  { { command -v prometheus-alertmanager || command -v alertmanager; } && command -v amtool; } >/dev/null 2>&1 ||
    missing+=(prometheus-alertmanager)
  echo "${missing[*]}"
}

packages=$(missing_packages)
kubectl_hint=""
command -v kubectl >/dev/null 2>&1 || kubectl_hint="kubectl (https://kubernetes.io/docs/tasks/tools/)"

if [ -n "$kubectl_hint" ]; then
  # Debian's kubectl is years old: this one is the user's to install, so stop before changing anything.
  stop "install ${kubectl_hint}${packages:+ and the Debian packages $packages (apt-get install $packages)}, then run it again"
fi
[ -z "$packages" ] && exit 0

install_hint="apt-get install $packages"
command -v apt-get >/dev/null 2>&1 ||
  stop "the alert and incident suites need promtool, prometheus, amtool and alertmanager: install them (Debian/Ubuntu: $install_hint), then run it again"
if [ "$(id -u)" = 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  as_root() { sudo -n "$@"; }
else
  stop "the alert and incident suites need packages $packages: run \`sudo $install_hint\` (this user cannot), then run it again"
fi

echo "npm test: installing $packages with apt-get (the alert and incident suites run them)" >&2
# Debian's packages start their services on install; the suites start their own on loopback ports.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap 'as_root rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086 # one word per package
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null ||
  stop "apt-get could not install $packages (its error is above): install them, then run it again"

still=$(missing_packages)
[ -z "$still" ] || stop "apt-get installed $packages, yet the tools of $still are not on PATH ($PATH): put them there, then run it again"
