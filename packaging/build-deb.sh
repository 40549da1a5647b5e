#!/usr/bin/env bash
# Builds the nearnative Debian package: packaging/build-deb.sh [--binary PATH] [--out DIR]
#
# It installs the binary, the systemd unit (not enabled, not started: the admin writes a
# policy first), an example policy, the man pages and the bash, zsh and fish completions,
# the last two made by the binary itself from its clap definitions so they always match it.
#
# The package is assembled by hand and built with `dpkg-deb --root-owner-group --build`
# rather than cargo-deb: dpkg-deb ships with every Debian system, so CI and a fresh machine
# need no extra tool, and every file's place is spelled out below.
#
#   --binary PATH  package this nearnative binary instead of building one with
#                  `cargo build --release`
#   --out DIR      where to write nearnative_VERSION_ARCH.deb (default: target/debian)
#
# Prints the .deb's path on stdout. Runs as any user: --root-owner-group makes every file
# root's in the package.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
binary=
out=$repo/target/debian

die() {
    echo "build-deb.sh: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        --binary) [ $# -ge 2 ] || die "--binary needs a PATH"; binary=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a DIR"; out=$2; shift 2 ;;
        *) die "unknown argument '$1' (usage: build-deb.sh [--binary PATH] [--out DIR])" ;;
    esac
done

if [ -z "$binary" ]; then
    cargo build --release -p nearnative --manifest-path "$repo/Cargo.toml" >&2
    binary=${CARGO_TARGET_DIR:-$repo/target}/release/nearnative
fi
[ -x "$binary" ] || die "$binary: not an executable file"

# The workspace's version: the `version` line of [workspace.package] in the root Cargo.toml.
version=$(awk '
    /^\[/ { in_package = ($0 == "[workspace.package]") }
    in_package && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' "$repo/Cargo.toml")
[ -n "$version" ] || die "$repo/Cargo.toml: no version in [workspace.package]"
arch=$(dpkg --print-architecture)

# Depends, from the shared libraries the binary links (ELF NEEDED): Rust links only glibc and
# libgcc_s. libc6's minimum is the newest GLIBC_ symbol version the binary asks for, as
# dpkg-shlibdeps would find it (without the debian/ source tree that tool wants).
depends() {
    local lib libc=no libgcc=no
    for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case $lib in
            libc.so.* | libm.so.* | ld-linux*.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libutil.so.*)
                libc=yes ;;
            libgcc_s.so.*) libgcc=yes ;;
            *) die "$binary links $lib, which no Debian package here is known for" ;;
        esac
    done
    [ "$libc" = yes ] || die "$binary does not link libc: not the dynamically linked binary expected"
    local glibc
    glibc=$(readelf -V --wide "$binary" | sed -n 's/.*Name: GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1)
    [ -n "$glibc" ] || die "$binary: no GLIBC_ symbol versions found"
    printf 'libc6 (>= %s)' "$glibc"
    if [ "$libgcc" = yes ]; then printf ', libgcc-s1'; fi
}
dependencies=$(depends)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/nearnative_${version}_${arch}

install -D -m 0755 "$binary" "$root/usr/bin/nearnative"
# The release profile keeps line tables for profiling; an installed binary needs only its
# symbols for a readable backtrace.
strip --strip-debug "$root/usr/bin/nearnative"
install -D -m 0644 "$repo/packaging/systemd/nearnative.service" "$root/lib/systemd/system/nearnative.service"
# Not a conffile in /etc: an example to copy, so `dpkg -r` removes it and every other file.
install -D -m 0644 "$repo/packaging/examples/workloads.toml" "$root/usr/share/nearnative/examples/workloads.toml"
# The policy directory the daemon reads, empty: the admin's files there are never the
# package's, and dpkg leaves the directory in place while it holds any.
install -d -m 0755 "$root/etc/nearnative/workloads.d"

man=$root/usr/share/man/man1
"$binary" manpages --out "$man"
chmod 0644 "$man"/*.1
gzip -9n "$man"/*.1

install -d -m 0755 "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$binary" completions bash >"$root/usr/share/bash-completion/completions/nearnative"
"$binary" completions zsh >"$root/usr/share/zsh/vendor-completions/_nearnative"
"$binary" completions fish >"$root/usr/share/fish/vendor_completions.d/nearnative.fish"

install -d -m 0755 "$root/usr/share/doc/nearnative"
cat >"$root/usr/share/doc/nearnative/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: nearnative

Files: *
Copyright: the nearnative authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Maintainer scripts. They reload systemd's view of the unit files when systemd is the
# running init (/run/systemd/system exists, as sd_booted(3) tests), and never enable or
# start the service: with no policy written yet it would have nothing to do, and a daemon
# that changes CPU placement, IRQs and kernel knobs should start when its admin says so.
# An upgrade restarts a running daemon (try-restart starts nothing), which is safe: a stop
# leaves the workloads applied and the new daemon adopts them. A removal stops it, leaving
# the workloads applied and /var/lib/nearnative in place, since removing a package is no
# request to change running VMs; `nearnative revert --all` first gives the host back.
install -d -m 0755 "$root/DEBIAN"
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then
        systemctl try-restart nearnative.service || true
    fi
fi
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop nearnative.service || true
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if { [ "$1" = remove ] || [ "$1" = purge ]; } && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: nearnative
Version: $version
Architecture: $arch
Maintainer: nearnative maintainers <nearnative@localhost>
Installed-Size: $installed_size
Depends: $dependencies
Section: admin
Priority: optional
Description: latency sensitivity = high for Linux workloads
 nearnative gives a KVM virtual machine, a process or a container's cgroup exclusive
 whole cores under admission control, with other tasks, interrupts and kernel threads
 moved away, and reverts it exactly. Its daemon keeps the workloads declared in
 /etc/nearnative/workloads.d latency-sensitive for their whole life.
EOF

mkdir -p "$out"
deb=$(cd "$out" && pwd)/nearnative_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
