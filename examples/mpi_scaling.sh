#!/bin/sh
# mpi_scaling.sh [N] [ITERS] - the scaling table of README ("Scaling out"):
# SARDFQ synthesis of N images (default 128 = 4 coupling groups) for ITERS
# steps (default 50) on the default model, as 1 process x 2 threads
# (sardfq), 2 ranks x 1 thread and 4 ranks x 1 thread (oversubscribed on 2
# cores) (sardfq-mpi); prints wall time, images/s and the efficiency
# against the first row. Run from the root of a build made with
# `meson setup build` (MPI found).
set -eu
n=${1:-128} iters=${2:-50}
model=examples/models/fmnist_vit.safetensors
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wall() { # command...: wall seconds
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
common="--model $model --n $n --iters $iters --seed 0"
t1=$(wall build/examples/sardfq synth $common --threads 2 --out "$tmp/a")
t2=$(wall mpirun -np 2 --bind-to none build/examples/sardfq-mpi synth $common --threads 1 --out "$tmp/b")
t4=$(wall mpirun -np 4 --oversubscribe --bind-to none build/examples/sardfq-mpi synth $common --threads 1 --out "$tmp/c")
cmp -s "$tmp/a/calib.safetensors" "$tmp/b/calib.safetensors" && cmp -s "$tmp/a/calib.safetensors" "$tmp/c/calib.safetensors" ||
    { echo "mpi_scaling: the calibration sets differ" >&2; exit 1; }
echo "| layout | wall s | images/s | efficiency |"
echo "|---|---:|---:|---:|"
for row in "1 process x 2 threads:$t1" "2 ranks x 1 thread:$t2" "4 ranks x 1 thread (oversubscribed):$t4"; do
    name=${row%%:*} t=${row##*:}
    printf '| %s | %.1f | %.2f | %.2f |\n' "$name" "$t" "$(echo "$n / $t" | bc -l)" "$(echo "$t1 / $t" | bc -l)"
done
