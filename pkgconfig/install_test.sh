#!/bin/sh
# install_test.sh BUILDDIR CONSUMER_C VERSION
#
# Installs the build into a temporary DESTDIR, then builds consumer.c the way
# an outside project would, from `pkg-config --cflags --libs sardfq` alone
# (prefix re-pointed into the DESTDIR), and runs it with LD_LIBRARY_PATH set to
# the installed lib directory only. Also checks that the header, the static
# archive, the soname link and the .pc version are installed, links the
# consumer against the static archive with `pkg-config --static`, and runs the
# installed `sardfq --version` when the CLI was built.
#
# Environment: MESON (default meson), CC (default cc), PKG_CONFIG (default
# pkg-config). Exit 0 ok, 1 failure, 77 (skip) if a tool is missing.
set -eu

builddir=$1
consumer=$2
version=$3
MESON=${MESON:-meson}
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

fail() { echo "install_test: $*" >&2; exit 1; }
# CC may carry a launcher or flags ("ccache cc"): it is split into words.
for t in "$PKG_CONFIG" "${CC%% *}"; do
    command -v "$t" >/dev/null 2>&1 || { echo "install_test: $t not found; skipping" >&2; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sardfq-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/dest

# --no-rebuild: meson test has already built everything, and a nested ninja
# must not run while the test harness holds the build directory.
$MESON install -C "$builddir" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install failed"; }

pc=$(find "$dest" -name sardfq.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "sardfq.pc was not installed"
pcdir=$(dirname "$pc")
# The .pc records the configured prefix; the files are under $dest/prefix.
prefix=$(sed -n 's/^prefix=//p' "$pc" | head -n 1)
[ -n "$prefix" ] || fail "$pc has no prefix= line"
root=$dest$prefix
pkgconf() {
    PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH} \
        "$PKG_CONFIG" --define-variable=prefix="$root" "$@" sardfq
}

got=$(pkgconf --modversion) || fail "pkg-config cannot read $pc"
[ "$got" = "$version" ] || fail "pkg-config --modversion says $got, expected $version"
libdir=$(pkgconf --variable=libdir)
includedir=$(pkgconf --variable=includedir)
case $libdir in "$dest"/*) ;; *) fail "libdir $libdir is not inside the install tree";; esac

[ -f "$includedir/sardfq.h" ] || fail "header not installed in $includedir"
[ -f "$libdir/libsardfq.a" ] || fail "static library not installed in $libdir"
[ -e "$libdir/libsardfq.so.0" ] || fail "libsardfq.so.0 not installed in $libdir"
[ -e "$libdir/libsardfq.so" ] || fail "development link libsardfq.so not installed in $libdir"

# Shared: flags from pkg-config only.
# shellcheck disable=SC2046
$CC -std=c99 -Wall -Wextra -Werror -o "$tmp/consumer" "$consumer" $(pkgconf --cflags --libs) ||
    fail "cannot build the consumer from pkg-config --cflags --libs sardfq"
LD_LIBRARY_PATH=$libdir "$tmp/consumer" || fail "the consumer (shared) failed"
# It must have run against the installed copy, not another one.
if command -v ldd >/dev/null 2>&1; then
    loaded=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer" | sed -n 's/.*libsardfq\.so\.0 => \([^ ]*\).*/\1/p')
    case $loaded in "$libdir"/*) ;; *) fail "consumer resolved libsardfq.so.0 to '$loaded', not $libdir";; esac
fi

# Static: the archive plus the private dependencies from pkg-config --static.
# shellcheck disable=SC2046
$CC -std=c99 -Wall -Wextra -Werror -o "$tmp/consumer-static" "$consumer" \
    $(pkgconf --cflags) "$libdir/libsardfq.a" \
    $(pkgconf --static --libs | sed 's/\(^\| \)-lsardfq\( \|$\)/ /g') ||
    fail "cannot link the consumer against libsardfq.a with pkg-config --static"
env -u LD_LIBRARY_PATH "$tmp/consumer-static" || fail "the consumer (static) failed"

bin=$root/bin/sardfq
if [ -x "$bin" ]; then
    out=$(LD_LIBRARY_PATH=$libdir "$bin" --version) || fail "installed sardfq --version failed"
    case $out in "sardfq $version"*) ;; *) fail "installed sardfq --version printed '$out'";; esac
fi
echo "install_test: ok (prefix $prefix, libdir ${libdir#"$dest"})"
