#!/bin/sh
# Produces the README performance table: `sardfq bench` on random-weight
# models (224x224; default deit_tiny deit_small vit_base, or the --arch
# names given after the build directory), batch 8, all online CPUs,
# each figure the median of 5 timed runs after a warm-up, with the 1024^3
# OpenBLAS sgemm measured in the same process right before.
# Usage: sh examples/perf_table.sh [BUILD_DIR [ARCH...]]   (default: build)
build=${1:-build}
[ $# -gt 0 ] && shift
archs=${*:-deit_tiny deit_small vit_base}
cli="$build/examples/sardfq"
[ -x "$cli" ] || { echo "perf_table.sh: build first ($cli missing)" >&2; exit 1; }
echo "| model | GFLOP/img | ms/img | forward GFLOP/s | sgemm GFLOP/s | ratio | fwd+bwd / fwd | peak RSS fwd (MiB) | weights (MiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for arch in $archs; do
    out=$("$cli" bench --arch "$arch" --batch 8 --repeat 5) || exit 1
    last=$(echo "$out" | tail -n 1)
    get() { echo "$last" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    gflop=$(echo "$out" | sed -n 's/.* \([0-9.]*\) GFLOP\/image forward/\1/p')
    msimg=$(echo "$out" | awk '$1 == "forward" && NF == 5 {print $4}')
    wmib=$(echo "$out" | sed -n 's/.*weights \([0-9.]*\) MiB.*/\1/p')
    echo "| $arch | $gflop | $msimg | $(get fwd_gflops) | $(get sgemm_gflops) | $(get ratio) | $(get bwd_over_fwd) | $(get peak_rss_mb) | $wmib |"
done
