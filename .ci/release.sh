#!/usr/bin/env bash
# Release plumbing for github.com/mcpkit/resilience. Run from the repository root.
#
#   bash .ci/release.sh set <version> <commit>
#       Points the release at <commit>: rewrites .ci/release and the version in
#       go.work's replace, makes
#       extra/resilientotel require github.com/mcpkit/resilience@<version> (no
#       replace), and rewrites its go.sum with the hashes of that commit's module.
#   bash .ci/release.sh proxy <dir>
#       Writes the release named in .ci/release into <dir> as a file-based
#       GOPROXY and drops any cached copy of that version from the module cache
#       (a cached copy of another commit would otherwise be used in its place).
#   bash .ci/release.sh show
#       Prints the version and commit named in .ci/release.
#
# With the proxy built, the nested module builds the way a user gets it:
#   GOWORK=off GOPROXY=file://<dir>,$(go env GOPROXY) GONOSUMDB='github.com/mcpkit/*' go build ./...
set -euo pipefail

module=github.com/mcpkit/resilience
mapping=.ci/release
nested=extra/resilientotel

die() { echo "release.sh: $*" >&2; exit 1; }

[ -f go.mod ] && grep -q "^module $module\$" go.mod || die "run from the root of $module"

read_mapping() {
  local line
  line=$(grep -v '^[[:space:]]*#' "$mapping" | grep -v '^[[:space:]]*$' || true)
  [ "$(printf '%s\n' "$line" | grep -c .)" = 1 ] || die "$mapping must hold exactly one '<version> <commit>' line"
  version=${line%% *}
  commit=${line#* }
  [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$mapping: version '$version' is not like v0.3.0"
  [[ "$commit" =~ ^[0-9a-f]{40}$ ]] || die "$mapping: commit '$commit' is not a full 40-digit hash"
}

# build_proxy DIR VERSION COMMIT
build_proxy() {
  local dir=$1 v=$2 c=$3
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  (cd .ci/modproxy && GOWORK=off go run . -repo ../.. -module "$module" -version "$v" -commit "$c" -out "$dir")
  # Only this module's copy of this version is dropped; the cache is
  # read-only on disk, hence the chmod.
  local cache
  cache=$(go env GOMODCACHE)
  if [ -e "$cache/$module@$v" ]; then
    chmod -R u+w "$cache/$module@$v"
    rm -rf "$cache/$module@$v"
  fi
  rm -f "$cache/cache/download/$module/@v/$v".*
}

case "${1:-}" in
  set)
    [ $# = 3 ] || die "usage: release.sh set <version> <commit>"
    version=$2
    [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version '$version' is not like v0.3.0"
    commit=$(git rev-parse --verify "$3^{commit}") || die "no commit '$3'"
    if ! git merge-base --is-ancestor "$commit" HEAD; then
      echo "release.sh: warning: $commit is not an ancestor of HEAD" >&2
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    build_proxy "$tmp/proxy" "$version" "$commit"
    sed -i -E "s/^v[0-9]+\.[0-9]+\.[0-9]+ [0-9a-f]{40}\$/$version $commit/" "$mapping"
    read_mapping
    grep -q "^$version $commit\$" "$mapping" || die "could not rewrite $mapping"
    # The workspace names the version it stands in for (see go.work).
    sed -i -E "s|^replace $module v[0-9]+\.[0-9]+\.[0-9]+ => \./\$|replace $module $version => ./|" go.work
    grep -q "^replace $module $version => ./\$" go.work || die "could not rewrite the replace in go.work"
    (
      cd "$nested"
      go mod edit -dropreplace="$module" -require="$module@$version"
      # The hashes of an earlier commit under the same version would fail
      # the check against the new ones: the release moved, on purpose.
      grep -v "^$module " go.sum >go.sum.tmp || true
      mv go.sum.tmp go.sum
      # A module cache of its own, for the reason given in .ci/run.
      GOWORK=off GOFLAGS= GOMODCACHE="$tmp/modcache" GOPROXY="file://$tmp/proxy,$(go env GOPROXY)" GONOSUMDB="github.com/mcpkit/*" go mod tidy
      chmod -R u+w "$tmp/modcache"
    )
    echo "release $version = $commit; $nested now requires it:"
    grep "^$module " "$nested/go.sum"
    ;;
  proxy)
    [ $# = 2 ] || die "usage: release.sh proxy <dir>"
    read_mapping
    build_proxy "$2" "$version" "$commit"
    ;;
  show)
    read_mapping
    echo "$version $commit"
    ;;
  *)
    die "usage: release.sh set <version> <commit> | proxy <dir> | show"
    ;;
esac
