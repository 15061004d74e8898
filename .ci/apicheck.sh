#!/usr/bin/env bash
# API check: fails when an exported name of github.com/mcpkit/resilience or of
# github.com/mcpkit/resilience/extra/resilientotel changes incompatibly since
# the release named in .ci/release (internal packages excluded). Run from the
# repository root:
#   bash .ci/apicheck.sh
# An intended break is acknowledged by releasing: bash .ci/release.sh set ...
set -euo pipefail

APIDIFF=golang.org/x/exp/cmd/apidiff@v0.0.0-20261113113407-e3970619a1a4
root=github.com/mcpkit/resilience
nested=extra/resilientotel

read -r version commit < <(bash .ci/release.sh show)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/old"
git archive "$commit" | tar -x -C "$work/old"

# Build the tool once; go run would relink it for every call.
GOWORK=off GOFLAGS= GOBIN="$work/bin" go install "$APIDIFF"
apidiff=$work/bin/apidiff

# The root module on its own (GOWORK=off): a go.work would add the nested
# module's packages to "$root/...".
(cd "$work/old" && GOWORK=off "$apidiff" -m -w "$work/root.export" "$root")
# The nested module as developed, against the root in the same tree: with the
# go.work of that tree where it has one, else its replace directive.
(cd "$work/old/$nested" && GOWORK= "$apidiff" -m -w "$work/nested.export" "$root/$nested")

status=0
check() { # check NAME EXPORT DIR MODULE [GOWORK]
  local name=$1 export=$2 dir=$3 mod=$4 out
  out=$(cd "$dir" && "$apidiff" -m -incompatible "$export" "$mod")
  if [ -n "$out" ]; then
    echo "API check: incompatible changes in $name since $version ($commit):"
    echo "$out"
    status=1
  else
    echo "API check: $name is compatible with $version ($commit)"
  fi
}
GOWORK=off check "$root" "$work/root.export" . "$root"
GOWORK= check "$root/$nested" "$work/nested.export" "$nested" "$root/$nested"
exit $status
