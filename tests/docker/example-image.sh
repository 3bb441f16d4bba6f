#!/usr/bin/env bash
# Builds Dockerfile.example where no registry can be reached: the builder
# stage on a Debian trixie made with debootstrap (Debian's rustc-web; trixie's
# rustc 1.85 is too old for the 2024 edition with let-chains), the runtime
# stage on a debootstrapped Debian bookworm, and the crates vendored on the
# host into the build context (a container may not reach crates.io).
#
#   sudo bash tests/docker/example-image.sh [TAG]     (default: corral-example)
#   docker run -d --name web -p 8080:80 corral-example
#
# Needs root (debootstrap), a Docker engine, cargo and a Debian mirror (the
# one of /etc/apt, else deb.debian.org). The debootstrapped bases are kept
# as tarballs in CORRAL_E2E_CACHE (default /var/cache/corral-e2e) and as
# images tagged corral-e2e-SUITE:KEY, so the next build takes a minute.
#
# tests/docker/run.sh sources this file for debian_image and example_image;
# run directly, it builds TAG and removes the builder stage's image.

# debian_image SUITE PKGS: a Debian image made with debootstrap, no
# registry: debootstrapped once, kept as a tarball keyed by suite and
# package list, loaded with `docker import`. Prints the tag. Uses $work
# (a scratch directory) for the root file system and the log.
debian_image() {
  local suite=$1 pkgs=$2
  local key; key=$(echo "$suite minbase $pkgs" | sha256sum | cut -c1-12)
  local cache=${CORRAL_E2E_CACHE:-/var/cache/corral-e2e}
  local tar=$cache/debian-$suite-$key.tar
  local tag=corral-e2e-$suite:$key
  if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; return 0; fi
  if [ ! -s "$tar" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } || return 1
    local mirror root=$work/rootfs-$suite
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$cache"
    debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" > "$work/debootstrap-$suite.log" 2>&1 \
      || { tail -5 "$work/debootstrap-$suite.log" >&2; return 1; }
    tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar" && rm -rf "$root" || return 1
    # A changed package list leaves the old tarball unused: drop it.
    find "$cache" -maxdepth 1 -name "debian-$suite-*.tar" ! -name "${tar##*/}" -delete
  fi
  docker import "$tar" "$tag" >/dev/null && echo "$tag"
}

# The base with the daemons of the example (and of the e2e tests), so
# Dockerfile.example's apt-get finds them installed.
debian_base() { debian_image bookworm "nginx,cron,busybox"; }
# The builder stage: Debian's rustc-web (1.96) and cargo-web.
rust_builder() { debian_image trixie "rustc-web,cargo-web,libc6-dev,ca-certificates"; }

# example_image TAG: builds Dockerfile.example from the repository (the
# working directory) as TAG. The build log is $work/example-build.log; the
# ids of the images it made (the untagged builder stage among them, about
# 1.2 GB) are appended to $work/built-images. Says what failed on stderr.
example_image() {
  local tag=$1 builder base
  builder=$(rust_builder) || { echo "building the Rust builder image (debootstrap trixie) failed" >&2; return 1; }
  base=$(debian_base) || { echo "building the Debian base (debootstrap bookworm) failed" >&2; return 1; }
  local ctx=$work/example-ctx
  rm -rf "$ctx" && mkdir -p "$ctx"
  tar --exclude=./target --exclude=./.git --exclude=./fuzz/target -c . | tar -x -C "$ctx"
  (cd "$ctx" && cargo vendor --locked --versioned-dirs vendor >> .cargo/config.toml 2>"$work/vendor.log") \
    || { echo "cargo vendor: $(tail -3 "$work/vendor.log")" >&2; return 1; }
  local t0; t0=$(date +%s)
  docker build -f Dockerfile.example --build-arg BUILDER="$builder" --build-arg BASE="$base" \
      -t "$tag" "$ctx" > "$work/example-build.log" 2>&1
  local built=$?
  # Every image this build made: " ---> ID" after each step but the FROMs.
  awk '/^Step [0-9]+\/[0-9]+ : FROM/ {from=1; next} /^ ---> [0-9a-f]+$/ {if (!from) print $2; from=0}' \
    "$work/example-build.log" >> "$work/built-images"
  if [ "$built" != 0 ]; then
    echo "docker build -f Dockerfile.example failed:" >&2
    tail -15 "$work/example-build.log" >&2
    return 1
  fi
  echo "Dockerfile.example built as $tag in $(( $(date +%s) - t0 )) s (builder $builder, base $base)"
}

# Run directly: build, then drop the intermediate images (not TAG's own).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  cd "$(dirname "$0")/../.."
  tag=${1:-corral-example}
  [ "$(id -u)" = 0 ] || { echo "example-image: needs root (debootstrap)" >&2; exit 1; }
  timeout 20 docker info >/dev/null 2>&1 || { echo "example-image: no Docker engine answers (docker info)" >&2; exit 1; }
  work=$(mktemp -d /tmp/corral-example.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  example_image "$tag" || exit 1
  own=$(docker image inspect -f '{{.Id}}' "$tag" | sed 's/^sha256://' | cut -c1-12)
  grep -v "^$own" "$work/built-images" | xargs -r docker rmi >/dev/null 2>&1
  echo "run it:  docker run -d --name web -p 8080:80 $tag && docker exec web svctl status"
fi
