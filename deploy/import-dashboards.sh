#!/bin/sh
# Import the shipped OpenSearch Dashboards saved objects through the bastion tunnel.
#
# First open the tunnel in another terminal (docs/DEPLOY.md section 3), e.g.:
#   $(pulumi stack output dashboardsTunnelCommand)
# The bastion's signing proxy turns the plain local requests into SigV4-signed ones for the domain.
# Usage: deploy/import-dashboards.sh [local port, default 9200]
set -eu
port="${1:-9200}"
file="$(dirname "$0")/dashboards/reviewstream.ndjson"
curl -fsS -X POST "http://localhost:${port}/_dashboards/api/saved_objects/_import?overwrite=true" \
    -H "osd-xsrf: true" --form "file=@${file}"
echo
