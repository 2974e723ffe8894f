#!/bin/sh
# Makes the base images deploy/Dockerfile and deploy/moto.Dockerfile start FROM, locally,
# for machines without access to an image registry (CI here): `debian:bookworm-slim` and
# `python:3.11-slim`, each a debootstrap'ed Debian 12 (minbase) imported under that tag.
# An image whose tag already exists is left alone, so running this again costs nothing.
#
# With a registry, none of this is needed: `docker build` pulls the official images.
#
# The images carry this machine's trust, not the Dockerfiles': the CA certificates in
# /usr/local/share/ca-certificates (an egress proxy's, say) are added to the images' bundle,
# and python:3.11-slim gets an /etc/pip.conf pointing pip at that bundle.
#
# Needs root, debootstrap (apt-get install -y debootstrap) and docker.
# Usage: deploy/local-base-images.sh   (MIRROR=... to use another Debian mirror)
set -eu

MIRROR=${MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# make TAG PACKAGES: debootstrap a bookworm minbase with PACKAGES (comma-separated) into a
# scratch directory and import it as TAG.
make() {
    tag=$1 include=$2
    if have "$tag"; then
        echo "local-base-images: $tag exists, skipped"
        return
    fi
    command -v debootstrap >/dev/null || {
        echo "local-base-images: debootstrap is missing (apt-get install -y debootstrap)" >&2
        exit 1
    }
    dir=$(mktemp -d /tmp/base-image.XXXXXX)
    trap 'rm -rf "$dir"' EXIT
    echo "local-base-images: debootstrap bookworm for $tag ..."
    if [ -n "$include" ]; then
        debootstrap --variant=minbase --include="$include" bookworm "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
            { tail -n 30 "$dir.log" >&2; exit 1; }
    else
        debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
            { tail -n 30 "$dir.log" >&2; exit 1; }
    fi
    rm -f "$dir.log"
    # This machine's extra CAs (kept by update-ca-certificates when an image installs
    # ca-certificates later).
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        mkdir -p "$dir/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
        if [ -x "$dir/usr/sbin/update-ca-certificates" ]; then
            chroot "$dir" update-ca-certificates >/dev/null 2>&1
        fi
    fi
    if [ -f "$dir/etc/ssl/certs/ca-certificates.crt" ]; then
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$dir/etc/pip.conf"
    fi
    rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
    tar -C "$dir" -c . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        - "$tag" >/dev/null
    rm -rf "$dir"
    trap - EXIT
    echo "local-base-images: made $tag"
}

make debian:bookworm-slim ""
make python:3.11-slim python3,python3-venv,ca-certificates
