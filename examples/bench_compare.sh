#!/bin/sh
# bench_compare.sh - compare the speed of two `sardfq` builds with
# `sardfq bench`, alternating them in one run so that both see the same
# machine (on a shared machine the sgemm rate can move by 3x between
# minutes; two separate runs compare the machine, not the code).
#
# Usage:
#   sh examples/bench_compare.sh [options] A B
#     A, B  two `sardfq` executables: A the baseline, B the candidate
#           (e.g. ../sardfq-0.3.0/build/examples/sardfq build/examples/sardfq)
#   options (defaults in brackets):
#     --archs "L"          architectures, separated by spaces or commas
#                          [deit_tiny deit_small swin_tiny]
#     --measures "L"       fwd (fp32 forward), synth (a --synth sardfq
#                          generator step) [fwd synth]
#     --rounds R           A B pairs per arch and measure [5]
#     --threads T          --threads for both builds [bench's default: all
#                          online CPUs]
#     --batch B            images per forward call [8]
#     --repeat N           timed forwards per bench process [3]
#     --synth-batch B      images per synthesis step [2]
#     --synth-repeat N     timed synthesis steps per bench process [2]
#
# For every arch and measure it runs A, B, A, B, ... (R runs of each, each
# a fresh `sardfq bench` process: one warm-up, then the median of N), then
# prints one table row: the median over the R runs of A and of B, and
#   ratio = B speed / A speed = median time A / median time B
# (above 1: B is faster). The figures read from `sardfq bench`:
#   fwd    the "forward" row's median ms per call, divided by the batch
#          (ms/img), from `sardfq bench --arch X --batch B --repeat N`
#   synth  synth_step_s= of the last line (s per step), from
#          `sardfq bench --arch X --synth sardfq --batch B --repeat N`
# The sgemm columns are the medians of the 1024^3 sgemm GFLOP/s each bench
# process measures first: if they differ much between A and B, the machine
# changed under the comparison and the row deserves a re-run. Every single
# figure is written to standard error as it comes; the table and the
# command line that produced it go to standard output.
#
# With the defaults (5 rounds, three archs) a comparison takes roughly
# 5-10 minutes on 2 cores. The script builds nothing: build both trees
# first, e.g. the 0.3.0 release in a separate worktree:
#   git worktree add ../sardfq-0.3.0 6b17563
#   meson setup ../sardfq-0.3.0/build ../sardfq-0.3.0
#   ninja -C ../sardfq-0.3.0/build
#   sh examples/bench_compare.sh ../sardfq-0.3.0/build/examples/sardfq \
#       build/examples/sardfq

me=bench_compare.sh
usage() { # EXIT_CODE
    sed -n '8,23p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "$1"
}
die() {
    echo "$me: $*" >&2
    exit 1
}

# The command line, quoted where needed, for the report.
cmdline="sh $0"
for arg in "$@"; do
    case $arg in
    '' | *[!A-Za-z0-9_./,:=+-]*) cmdline="$cmdline '$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'" ;;
    *) cmdline="$cmdline $arg" ;;
    esac
done

archs="deit_tiny deit_small swin_tiny"
measures="fwd synth"
rounds=5
threads=
batch=8
repeat=3
sbatch=2
srepeat=2

posint() { # NAME VALUE
    case $2 in
    '' | *[!0-9]* | 0*) die "$1 wants a positive integer, not '$2'" ;;
    esac
}

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage 0 ;;
    --archs | --measures | --rounds | --threads | --batch | --repeat | --synth-batch | --synth-repeat)
        [ $# -ge 2 ] || die "$1 needs a value"
        opt=$1
        val=$2
        shift 2
        case $opt in
        --archs) archs=$(printf '%s' "$val" | tr ',' ' ') ;;
        --measures) measures=$(printf '%s' "$val" | tr ',' ' ') ;;
        --rounds) posint "$opt" "$val" && rounds=$val ;;
        --threads) posint "$opt" "$val" && threads=$val ;;
        --batch) posint "$opt" "$val" && batch=$val ;;
        --repeat) posint "$opt" "$val" && repeat=$val ;;
        --synth-batch) posint "$opt" "$val" && sbatch=$val ;;
        --synth-repeat) posint "$opt" "$val" && srepeat=$val ;;
        esac
        ;;
    --) shift; break ;;
    -*) echo "$me: unknown option '$1'" >&2; usage 2 ;;
    *) break ;;
    esac
done
[ $# -eq 2 ] || { echo "$me: give two sardfq executables, A (baseline) and B (candidate)" >&2; usage 2; }
bin_a=$1
bin_b=$2
for b in "$bin_a" "$bin_b"; do
    if [ ! -x "$b" ] || [ -d "$b" ]; then
        die "'$b' is not an executable (build it first)"
    fi
done
for m in $measures; do
    case $m in
    fwd | synth) ;;
    *) die "unknown measure '$m' (fwd, synth)" ;;
    esac
done
[ -n "$archs" ] || die "no arch given"

# median: of the numbers on standard input, one a line
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1
              if (NR % 2) printf "%.6g\n", v[(NR + 1) / 2]
              else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# run BIN ARCH MEASURE: one bench process; prints "VALUE SGEMM_GFLOPS"
run() {
    measure=$3
    if [ "$measure" = fwd ]; then
        set -- "$1" bench --arch "$2" --batch "$batch" --repeat "$repeat" ${threads:+--threads "$threads"}
    else
        set -- "$1" bench --arch "$2" --synth sardfq --batch "$sbatch" --repeat "$srepeat" \
            ${threads:+--threads "$threads"}
    fi
    out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; die "failed: $*"; }
    sg=$(printf '%s\n' "$out" | sed -n 's/^fwd_gflops=.* sgemm_gflops=\([0-9.]*\) .*/\1/p')
    if [ "$measure" = synth ]; then # s per step
        v=$(printf '%s\n' "$out" | sed -n 's/^synth_step_s=\([0-9.]*\) .*/\1/p')
    else # ms per image = the forward row's median ms / batch
        v=$(printf '%s\n' "$out" | awk -v n="$batch" '$1 == "forward" && NF == 5 { printf "%.4f\n", $2 / n }')
    fi
    if [ -z "$v" ] || [ -z "$sg" ]; then
        printf '%s\n' "$out" >&2
        die "cannot read the figures of: $*"
    fi
    echo "$v $sg"
}

start=$(date +%s)
echo "$me: A = $bin_a, B = $bin_b; $rounds rounds A B A B ... per row" >&2
rows=
for arch in $archs; do
    for m in $measures; do
        ta='' tb='' sa='' sb=''
        r=1
        while [ "$r" -le "$rounds" ]; do
            ra=$(run "$bin_a" "$arch" "$m") || exit 1
            rb=$(run "$bin_b" "$arch" "$m") || exit 1
            echo "  $arch $m round $r: A ${ra% *} B ${rb% *}  (sgemm GFLOP/s A ${ra#* } B ${rb#* })" >&2
            ta="$ta${ra% *}
"
            tb="$tb${rb% *}
"
            sa="$sa${ra#* }
"
            sb="$sb${rb#* }
"
            r=$((r + 1))
        done
        ma=$(printf '%s' "$ta" | median)
        mb=$(printf '%s' "$tb" | median)
        ga=$(printf '%s' "$sa" | median)
        gb=$(printf '%s' "$sb" | median)
        if [ "$m" = fwd ]; then
            what="fp32 forward, batch $batch (ms/img)"
        else
            what="sardfq synth step, batch $sbatch (s)"
        fi
        ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }')
        rows="$rows| $arch | $what | $ma | $mb | $ratio | $ga | $gb |
"
    done
done
end=$(date +%s)

echo "sardfq bench, A = $bin_a (baseline), B = $bin_b (candidate)"
echo "$rounds rounds alternating A B A B ..., medians over the rounds; threads: ${threads:-all online CPUs};"
echo "fwd: --batch $batch --repeat $repeat; synth: --synth sardfq --batch $sbatch --repeat $srepeat; $((end - start)) s in all"
echo "command: $cmdline"
echo
echo "| arch | measure | median A | median B | B speed / A speed | sgemm GFLOP/s A | sgemm GFLOP/s B |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
