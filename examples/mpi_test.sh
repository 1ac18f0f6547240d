#!/bin/sh
# mpi_test.sh CASE MPIRUN SARDFQ SARDFQ_MPI MODEL [DATA]
#
# The sardfq-mpi checks (suite 'mpi', registered by examples/meson.build
# when MPI is found). Open MPI runs as root on a small machine: the
# OMPI_ALLOW_RUN_AS_ROOT pair, more ranks than cores (oversubscribe, no
# binding), shared memory and loopback only, no single-copy (CMA is blocked
# in containers), waiting ranks yield.
#   synth     sardfq-mpi -np 1, 2, 4 write calib.safetensors byte-identical
#             to `sardfq synth` at 1 and 2 threads (100 images: groups of
#             32, 32, 32, 4), and psaq/noise at -np 2
#   quantize  `quantize --synth` at -np 2 writes the model `sardfq quantize`
#             writes, byte for byte
#   eval      the last line of `sardfq-mpi eval` at -np 2 and 3 is that of
#             `sardfq eval`
#   fail      SARDFQ_MPI_FAIL_RANK=1: every rank exits 1, one message (the
#             failed rank's), no output folder, and rank 0 stops early
#             (2000 steps would take minutes; the case allows 60 s); the
#             same for eval
#   bad       an n the ranks cannot split (exit 2), an unreadable model
#             (exit 1): one message each, every rank non-zero
set -u
case_=$1 mpirun=$2 sardfq=$3 sardfq_mpi=$4 model=$5 data=${6:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sardfq-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
bad() { echo "FAIL: $*"; fail=1; }
mpi() { # np, args...
    np=$1
    shift
    "$mpirun" -np "$np" --oversubscribe --bind-to none "$sardfq_mpi" "$@"
}

# every rank's exit status (SARDFQ_MPI_STATUS_DIR) is $1; np ranks
all_ranks_exit() { # want, np, dir
    for r in $(seq 0 $(($2 - 1))); do
        got=$(cat "$3/rank.$r" 2>/dev/null || echo missing)
        [ "$got" = "$1" ] || bad "rank $r exited $got, not $1"
    done
}
# exactly one line of ours on stderr, matching ERE
one_message() { # file, ERE
    n=$(grep -c '^sardfq-mpi: ' "$1")
    [ "$n" = 1 ] || bad "$n lines 'sardfq-mpi: ...' on stderr, not 1"
    grep -Eq "$2" "$1" || bad "stderr has no line matching $2"
}

case $case_ in
synth)
    common="--model $model --n 100 --iters 2 --seed 7"
    for t in 1 2; do
        "$sardfq" synth $common --threads $t --out "$tmp/ref$t" >/dev/null 2>&1 || bad "sardfq synth --threads $t"
    done
    cmp -s "$tmp/ref1/calib.safetensors" "$tmp/ref2/calib.safetensors" || bad "sardfq synth: 1 and 2 threads differ"
    for np in 1 2 4; do
        mpi $np synth $common --threads 1 --out "$tmp/mpi$np" >"$tmp/out$np" 2>"$tmp/err$np" || bad "-np $np failed"
        cmp -s "$tmp/ref1/calib.safetensors" "$tmp/mpi$np/calib.safetensors" || bad "-np $np: calib.safetensors differs"
        cmp -s "$tmp/ref1/sheet.png" "$tmp/mpi$np/sheet.png" || bad "-np $np: sheet.png differs"
        grep -Eq '^images=100 steps=2 seconds=[0-9.]+ target_prob=[0-9.]+ out=' "$tmp/out$np" || bad "-np $np: last line"
    done
    for m in psaq noise; do
        "$sardfq" synth --method $m $common --threads 2 --out "$tmp/ref_$m" >/dev/null 2>&1 || bad "sardfq synth $m"
        mpi 2 synth --method $m $common --threads 1 --out "$tmp/mpi_$m" >/dev/null 2>&1 || bad "-np 2 $m failed"
        cmp -s "$tmp/ref_$m/calib.safetensors" "$tmp/mpi_$m/calib.safetensors" || bad "$m -np 2: calib differs"
    done
    ;;
quantize)
    common="--model $model --synth sardfq --n 64 --iters 2 --wbits 4 --abits 4 --recon-iters 2"
    "$sardfq" quantize $common --threads 2 --out "$tmp/q1.safetensors" --save-calib "$tmp/c1.safetensors" \
        >/dev/null 2>&1 || bad "sardfq quantize"
    mpi 2 quantize $common --threads 1 --out "$tmp/q2.safetensors" --save-calib "$tmp/c2.safetensors" \
        >"$tmp/out" 2>"$tmp/err" || bad "-np 2 quantize failed"
    cmp -s "$tmp/c1.safetensors" "$tmp/c2.safetensors" || bad "calibration sets differ"
    cmp -s "$tmp/q1.safetensors" "$tmp/q2.safetensors" || bad "quantized models differ"
    grep -Eq '^images=64 source=sardfq scheme=repq wbits=4 abits=4 recon_iters=2 ' "$tmp/out" || bad "last line"
    ;;
eval)
    common="--model $model --data $data --limit 1000 --batch 64"
    "$sardfq" eval $common --threads 2 >"$tmp/ref" 2>/dev/null || bad "sardfq eval"
    for np in 2 3; do
        mpi $np eval $common --threads 1 >"$tmp/out$np" 2>/dev/null || bad "-np $np eval failed"
        [ "$(tail -n 1 "$tmp/ref")" = "$(tail -n 1 "$tmp/out$np")" ] ||
            bad "-np $np: '$(tail -n 1 "$tmp/out$np")' vs '$(tail -n 1 "$tmp/ref")'"
    done
    grep -Eq '^top1=[0-9]+\.[0-9]{2} top5=[0-9]+\.[0-9]{2} n=1000$' "$tmp/ref" || bad "sardfq eval's last line"
    ;;
fail)
    mkdir "$tmp/st"
    SARDFQ_MPI_FAIL_RANK=1 SARDFQ_MPI_STATUS_DIR="$tmp/st" timeout 60 \
        "$mpirun" -np 2 --oversubscribe --bind-to none "$sardfq_mpi" synth --model "$model" --n 64 --iters 2000 \
        --threads 1 --out "$tmp/never" >/dev/null 2>"$tmp/err"
    rc=$?
    [ $rc -ne 124 ] || bad "rank 0 did not stop when rank 1 failed (killed after 60 s)"
    [ $rc -ne 0 ] || bad "mpirun exited 0"
    all_ranks_exit 1 2 "$tmp/st"
    one_message "$tmp/err" '^sardfq-mpi: rank 1 of 2: synth: injected failure'
    [ ! -e "$tmp/never" ] || bad "the output folder was left behind"
    if [ -n "$data" ]; then
        rm -f "$tmp/st/"*
        SARDFQ_MPI_FAIL_RANK=0 SARDFQ_MPI_STATUS_DIR="$tmp/st" \
            mpi 3 eval --model "$model" --data "$data" --limit 300 --threads 1 >"$tmp/out" 2>"$tmp/err"
        all_ranks_exit 1 3 "$tmp/st"
        one_message "$tmp/err" '^sardfq-mpi: rank 0 of 3: eval: injected failure'
        ! grep -q '^top1=' "$tmp/out" || bad "eval printed a result"
    fi
    ;;
bad)
    mkdir "$tmp/st"
    SARDFQ_MPI_STATUS_DIR="$tmp/st" mpi 2 synth --model "$model" --n 32 --iters 2 --out "$tmp/never" \
        >/dev/null 2>"$tmp/err"
    all_ranks_exit 2 2 "$tmp/st"
    one_message "$tmp/err" '^sardfq-mpi: synth: --n 32 is 1 coupling group.* cannot be split over 2 ranks'
    [ ! -e "$tmp/never" ] || bad "the output folder was left behind"
    rm -f "$tmp/st/"*
    SARDFQ_MPI_STATUS_DIR="$tmp/st" mpi 2 synth --model "$tmp/nonexistent.safetensors" --n 64 --out "$tmp/never" \
        >/dev/null 2>"$tmp/err"
    all_ranks_exit 1 2 "$tmp/st"
    one_message "$tmp/err" '^sardfq-mpi: cannot load model'
    [ ! -e "$tmp/never" ] || bad "the output folder was left behind"
    ;;
*)
    echo "mpi_test: unknown case $case_"
    exit 2
    ;;
esac
if [ $fail -ne 0 ]; then
    for f in "$tmp"/err*; do [ -s "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
fi
echo "mpi_test $case_: ok"
