#!/usr/bin/env bash
# Regenerates imports/ from the pinned CRD files in crds/ (offline; crds/README.md says where each comes from).
# Several CRDs of one API group go into one file, so they are joined first.
set -euo pipefail
cd "$(dirname "$0")/.."
crds=crds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

import_group() { # name files...
  local name=$1; shift
  local joined="$tmp/$name.yaml"
  for f in "$@"; do cat "$crds/$f"; echo '---'; done > "$joined"
  CDK8S_CHECK_UPGRADE=false npx cdk8s import --no-save --language typescript --output imports "$joined" >/dev/null 2>&1 || { echo "cdk8s import of $name failed" >&2; exit 1; }
}

rm -rf imports && mkdir imports
import_group cert-manager cert-manager/clusterissuers.yaml cert-manager/certificates.yaml cert-manager/issuers.yaml
import_group argo-cd argo-cd/application.yaml
import_group gateway-api gateway-api/gateways.yaml gateway-api/httproutes.yaml
import_group prometheus-operator prometheus-operator/servicemonitors.yaml prometheus-operator/podmonitors.yaml prometheus-operator/prometheusrules.yaml
import_group cloudnative-pg cloudnative-pg/clusters.yaml cloudnative-pg/scheduledbackups.yaml cloudnative-pg/backups.yaml cloudnative-pg/poolers.yaml
import_group barman-cloud cloudnative-pg/barman-cloud-objectstores.yaml
ls imports
