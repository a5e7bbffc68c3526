#!/bin/sh
# A Debian bookworm base image made locally with debootstrap and `docker import`, for
# machines that reach Debian's package mirror but no container registry.
#   base-image.sh [TAG]     (default prognos-base:bookworm; kept once made)
# PROGNOS_DEBIAN_MIRROR names the mirror (http://deb.debian.org/debian).
set -eu
tag=${1:-prognos-base:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag: present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "debootstrap needs root; or pass a public base: make image BASE_IMAGE=python:3.11-slim-bookworm" >&2
  exit 1
fi
mirror=${PROGNOS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/prognos-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror (a few minutes)"
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; exit 1; }
# This machine's apt settings (a snapshot mirror's dates), as the host uses them.
for conf in /etc/apt/apt.conf.d/99artifact-registry; do
  [ -f "$conf" ] && cp "$conf" "$root/etc/apt/apt.conf.d/"
done
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
tar -C "$root" -c . | docker import - "$tag" >/dev/null
rm -f "$root.log"
echo "base image $tag: made"
