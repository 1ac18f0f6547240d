#!/bin/sh
# quant_table.sh - the end-to-end table of README ("Quantization"): the
# default model quantized with RepQ-ViT at several bit widths from each
# calibration source, 3 seeds each, top-1 on the 10000 Fashion-MNIST test
# images.
#
#   sh examples/quant_table.sh [WORKDIR] [RECON_ITERS]
#
# Environment (defaults: the README's ViT table): MODEL (a model file),
# BITS (W,A pairs), SOURCES (synthesis sources among noise psaq sardfq-apa
# sardfq-msr-sl sardfq, and psaq-ha sardfq-ha: the same with the inter-head
# alignment term at weight HEAD_ALIGN, default 100, sardfq-ha-ssim: its SSIM
# form; real calibration always runs), SEEDS, ALPHA (the APA weight of the sardfq sources; default the
# library's, 100). RECON_ATTNS lists head-wise attention distillation
# weights for the reconstruction runs (default "0": without; e.g. "0 10"
# runs each reconstruction with and without it). E.g. the Swin rows:
#   MODEL=examples/models/fmnist_swin.safetensors BITS="8,8 6,6 4,4" ALPHA=1 \
#   SOURCES="noise psaq sardfq" sh examples/quant_table.sh build/quant_table_swin_a1 0
#
# NS lists calibration-set sizes (default 32). Phase 1 synthesises the
# largest of them per source and seed into WORKDIR (default
# build/quant_table) and reuses the sets when present; a run with n images
# takes the first n of that set, which are the images an n-image synthesis
# makes (the randomness is keyed by image index; PSAQ-ViT's and the TV
# target's coupling groups are 32 consecutive images). Phase 2 quantizes
# and evaluates; phase 3 prints markdown tables (mean +- sample standard
# deviation over the seeds), one per calibration-set size. With
# RECON_ITERS > 0 every configuration is also run with block reconstruction
# of that many iterations per block (at RECON_BITS, default W4A4, W4A3,
# W3A3); REAL_RECON=0 leaves out the real-image runs with reconstruction
# (the slowest part at large n). Needs a release build in build/ and the dataset-fashion-mnist
# package. Takes about an hour on 2 cores with the defaults. The
# calibration-set-size table of README ("Does a larger calibration set
# help?"):
#   NS="32 128 256" BITS="4,3" RECON_BITS="3,3" SOURCES="psaq sardfq" REAL_RECON=0 \
#   sh examples/quant_table.sh build/calib_size 100
set -eu
cd "$(dirname "$0")/.."
W=${1:-build/quant_table}
RECON=${2:-0}
S=build/examples/sardfq
M=${MODEL:-examples/models/fmnist_vit.safetensors}
DATA=/usr/share/datasets/fashion-mnist
SEEDS=${SEEDS:-"0 1 2"}
BITS=${BITS:-"8,8 6,6 4,4 4,3 3,3"}
RECON_BITS=${RECON_BITS:-"4,4 4,3 3,3"} # reconstruction runs at the low bit widths only
NS=${NS:-32}
NMAX=$(for n in $NS; do echo "$n"; done | sort -n | tail -n 1)
mkdir -p "$W/train" "$W/results" "$W/calib"
# the training split alone (a folder with both splits would give t10k)
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do
    [ -e "$W/train/$f" ] || ln -s "$DATA/$f" "$W/train/$f"
done

# source name, then the sardfq synth options that make it
SOURCES=${SOURCES:-"noise psaq sardfq-apa sardfq-msr-sl sardfq"}
synth_opts() {
    case $1 in
    noise) echo "--method noise" ;;
    psaq) echo "--method psaq" ;;
    sardfq-apa) echo "--method sardfq --no-msr --no-sl ${ALPHA:+--alpha $ALPHA}" ;;
    sardfq-msr-sl) echo "--method sardfq --no-apa" ;;
    sardfq) echo "--method sardfq ${ALPHA:+--alpha $ALPHA}" ;;
    psaq-ha) echo "--method psaq --head-align ${HEAD_ALIGN:-100}" ;;
    sardfq-ha) echo "--method sardfq ${ALPHA:+--alpha $ALPHA} --head-align ${HEAD_ALIGN:-100}" ;;
    sardfq-ha-ssim) echo "--method sardfq ${ALPHA:+--alpha $ALPHA} --head-align ${HEAD_ALIGN:-100} --head-align-form ssim" ;;
    esac
}

echo "phase 1: calibration sets in $W" >&2
for seed in $SEEDS; do
    for src in $SOURCES; do
        d="$W/calib/$src-$seed"
        if [ ! -f "$d/calib.safetensors" ]; then
            # shellcheck disable=SC2046
            $S synth --model $M --out "$d" --n "$NMAX" --seed "$seed" $(synth_opts "$src") 2>/dev/null |
                tail -n 1 >"$d.log" || { echo "synth $src $seed failed" >&2; exit 1; }
        fi
    done
done

echo "phase 2: quantize and evaluate (2 jobs at a time, 1 thread each)" >&2
[ -s "$W/results/fp.txt" ] || $S eval --model $M --data "$DATA" --threads 2 | tail -n 1 >"$W/results/fp.txt"
RECON_ATTNS=${RECON_ATTNS:-0}
# the reconstruction variants: <iters> or <iters>a<attention weight>
VARIANTS=0
if [ "$RECON" -gt 0 ]; then
    for ra in $RECON_ATTNS; do
        if [ "$ra" = 0 ]; then VARIANTS="$VARIANTS $RECON"; else VARIANTS="$VARIANTS ${RECON}a$ra"; fi
    done
fi
JOBS=$W/jobs.$$.txt # per invocation: two runs may share WORKDIR (different SEEDS)
# one line per job: name bits seed recon source-options
for rec in $VARIANTS; do
    bitlist=$BITS
    [ "$rec" != 0 ] && bitlist=$RECON_BITS
    for bits in $bitlist; do
        for n in $NS; do
            for seed in $SEEDS; do
                [ "$rec" != 0 ] && [ "${REAL_RECON:-1}" = 0 ] ||
                    echo "real $bits $seed $rec $n --real $W/train --seed $seed --n $n"
                for src in $SOURCES; do
                    echo "$src $bits $seed $rec $n --calib $W/calib/$src-$seed/calib.safetensors --n $n"
                done
            done
        done
    done
done >"$JOBS"
export S M DATA W
# shellcheck disable=SC2016
xargs -P 2 -L 1 sh -c '
    name=$0 bits=$1 seed=$2 rec=$3 n=$4
    shift 4
    tag="$name-w${bits%,*}a${bits#*,}-r$rec-n$n-s$seed"
    out="$W/results/$tag.txt"
    [ -s "$out" ] && exit 0
    recopt=""
    case $rec in
    0) ;;
    *a*) recopt="--recon-iters ${rec%a*} --recon-attn ${rec#*a}" ;;
    *) recopt="--recon-iters $rec" ;;
    esac
    $S quantize --model $M --out "$W/$tag.safetensors" --wbits "${bits%,*}" --abits "${bits#*,}" \
        --threads 1 $recopt "$@" >"$out.tmp" 2>/dev/null &&
        $S eval --model "$W/$tag.safetensors" --data "$DATA" --threads 1 | tail -n 1 >>"$out.tmp" &&
        rm -f "$W/$tag.safetensors" && mv "$out.tmp" "$out"
' <"$JOBS"
rm -f "$JOBS"

echo "phase 3: tables" >&2
fp=$(sed -n 's/^top1=\([0-9.]*\).*/\1/p' "$W/results/fp.txt")
for n in $NS; do
for rec in $VARIANTS; do
    case $rec in
    0) echo "### Calibration only (RepQ-ViT), $n images, top-1 % (mean ± std over seeds $SEEDS); FP $fp" ;;
    *a*) echo "### With block reconstruction (${rec%a*} iterations per block) and head-wise attention distillation (weight ${rec#*a}), $n images, top-1 % (mean ± std over seeds $SEEDS); FP $fp" ;;
    *) echo "### With block reconstruction ($rec iterations per block), $n images, top-1 % (mean ± std over seeds $SEEDS); FP $fp" ;;
    esac
    bitlist=$BITS
    [ "$rec" != 0 ] && bitlist=$RECON_BITS
    printf '| calibration |'
    for bits in $bitlist; do printf ' W%sA%s |' "${bits%,*}" "${bits#*,}"; done
    echo
    printf '|---|'
    for bits in $bitlist; do printf -- '---:|'; done
    echo
    for src in real $SOURCES; do
        case $src in
        real) label="real ($n train images)" ;;
        noise) label="Gaussian noise" ;;
        psaq) label="PSAQ-ViT" ;;
        sardfq-apa) label="SARDFQ: APA only" ;;
        sardfq-msr-sl) label="SARDFQ: MSR + SL" ;;
        sardfq) label="SARDFQ (APA + MSR + SL)" ;;
        psaq-ha) label="PSAQ-ViT + head alignment" ;;
        sardfq-ha) label="SARDFQ + head alignment" ;;
        sardfq-ha-ssim) label="SARDFQ + head alignment (SSIM form)" ;;
        esac
        printf '| %s |' "$label"
        for bits in $bitlist; do
            tag="w${bits%,*}a${bits#*,}-r$rec-n$n"
            cat "$W"/results/"$src-$tag"-s*.txt 2>/dev/null | sed -n 's/^top1=\([0-9.]*\) .*/\1/p' |
                awk '{ s += $1; ss += $1 * $1; n++ }
                     END { if (n == 0) { printf " - |"; exit }
                           m = s / n; v = n > 1 ? (ss - n * m * m) / (n - 1) : 0; if (v < 0) v = 0;
                           printf " %.2f ± %.2f |", m, sqrt(v) }'
        done
        echo
    done
    echo
done
done
echo "### Time per stage (median seconds over the runs)"
echo "| stage | seconds |"
echo "|---|---:|"
for src in $SOURCES; do
    [ "$src" = noise ] && continue
    cat "$W"/calib/"$src"-*.log | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' | sort -n |
        awk -v s="$src" -v nmax="$NMAX" '{ v[NR] = $1 } END { if (NR) printf "| synthesis, %s (%d images, 1000 steps, 2 threads) | %.1f |\n", s, nmax, v[int((NR + 1) / 2)] }'
done
for rec in $VARIANTS; do
    key=seconds_calibrate what="calibration (RepQ-ViT, 1 thread)"
    [ "$rec" != 0 ] && key=seconds_reconstruct what="block reconstruction, $rec iterations per block (1 thread)"
    cat "$W"/results/*-r"$rec"-n*-s*.txt | sed -n "s/.*$key=\([0-9.]*\).*/\1/p" | sort -n |
        awk -v w="$what" '{ v[NR] = $1 } END { if (NR) printf "| %s | %.2f |\n", w, v[int((NR + 1) / 2)] }'
done
echo
echo "(\`MODEL=$M REAL_RECON=${REAL_RECON:-1} NS=\"$NS\" BITS=\"$BITS\" RECON_BITS=\"$RECON_BITS\" SOURCES=\"$SOURCES\" SEEDS=\"$SEEDS\" ALPHA=${ALPHA:-} HEAD_ALIGN=${HEAD_ALIGN:-} RECON_ATTNS=\"$RECON_ATTNS\" sh examples/quant_table.sh $W $RECON\`; evaluation on the 10000 test images)"
