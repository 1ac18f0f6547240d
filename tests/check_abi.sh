#!/bin/sh
# check_abi.sh BASELINE.abi HEADERS_DIR LIBRARY.so - compare the built library
# with the committed ABI baseline (lib/sardfq.abi) using libabigail's abidiff,
# with the suppressions of lib/sardfq.abignore (next to the baseline).
# The rules are in lib/ABI.md. Exit status:
#   0  no change, or only added functions/variables, each in a version node
#      that is not in the baseline;
#   1  any other change (abidiff exit bit 4 "ABI change" or 8 "incompatible
#      change"), an addition to a released version node, or an abidiff error;
#   77 skipped (meson's skip): abidiff or readelf is missing, or the library
#      has no DWARF (a build without -g; see lib/ABI.md).
base=$1 hdr=$2 lib=$3
supp=${base%.abi}.abignore

for tool in abidiff readelf; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "check_abi: $tool not found (Debian: abigail-tools, binutils): skipped"
        exit 77
    fi
done
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
    echo "check_abi: $lib has no debug info (built without -g): skipped"
    exit 77
fi

report=$(abidiff --suppressions "$supp" --headers-dir1 "$hdr" --headers-dir2 "$hdr" "$base" "$lib")
rc=$?
[ -n "$report" ] && printf '%s\n' "$report"
if [ $rc -eq 0 ]; then
    echo "check_abi: no ABI change against $base"
    exit 0
fi
if [ $((rc & 3)) -ne 0 ]; then
    echo "check_abi: abidiff failed (exit $rc)"
    exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
    echo "check_abi: INCOMPATIBLE ABI change (abidiff exit $rc): see lib/ABI.md"
    exit 1
fi

# Bit 4 only: pass if the change is nothing but additions. abidiff ignoring
# added symbols must then find no change at all.
abidiff --no-added-syms --suppressions "$supp" --headers-dir1 "$hdr" --headers-dir2 "$hdr" "$base" "$lib" >/dev/null
if [ $? -ne 0 ]; then
    echo "check_abi: ABI change (abidiff exit $rc) beyond additions: see lib/ABI.md"
    exit 1
fi
# Each added symbol must be in a new version node ("{name@@SARDFQ_x.y}").
old_nodes=$(sed -n "s/.*<elf-symbol .* version='\([^']*\)'.*/\1/p" "$base" | sort -u)
status=0
for v in $(printf '%s\n' "$report" | sed -n 's/^ *\[A\] .*{[^@}]*@@*\([^}]*\)}.*/\1/p' | sort -u); do
    for o in $old_nodes; do
        if [ "$v" = "$o" ]; then
            echo "check_abi: symbols added to the released version node $v: add a new node to lib/sardfq.map"
            status=1
        fi
    done
done
if printf '%s\n' "$report" | grep -q '^ *\[A\] ' &&
   ! printf '%s\n' "$report" | grep '^ *\[A\] ' | grep -q '@'; then
    echo "check_abi: added symbols without a version: add a new node to lib/sardfq.map"
    status=1
fi
[ $status -eq 0 ] && echo "check_abi: additions only (compatible); regenerate $base at the release"
exit $status
