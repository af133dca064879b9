#!/usr/bin/env bash
# Vocabulary-level distillation end to end, on CPU: mask the training sentences of the six
# CPU-scale GLUE tasks, fit the bundled MiniLM-L6's masked-LM head (it ships without one; its
# six layers adapt along, --train-layers 6), store its top-k distributions (k = 1, 8, 32, 128)
# with the fidelity report, distil a 3-layer student (layers 0, 2, 4) from the top-32 store, and
# fine-tune it and the same 3 layers cut without distillation on the low-resource MT-DNN recipe
# (recipes/lowres/mtdnn.yaml).
#
#   bash benchmarks/mlm_distillation.sh        # from the repository root, venv active
#   SEEDS="13 14 15" bash benchmarks/mlm_distillation.sh   # fine-tune over several seeds
#
# Every step is skipped when its output exists, so a rerun goes on where it stopped.
# Outputs under runs/mlm/; the fidelity table is runs/mlm/stores/fidelity.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
OUT=runs/mlm
SEEDS=${SEEDS:-13}
mkdir -p "$OUT"

[ -d "$OUT/corpus" ] || kdnlu-mlm corpus --tasks rte mrpc stsb cola sst2 wnli --limit 3000 \
    --out "$OUT/corpus"  # GLUE from $KDNLU_DATA/glue, else ~/.cache/kdnlu/data/glue
[ -d "$OUT/teacher" ] || kdnlu-mlm head minilm --corpus "$OUT/corpus" --out "$OUT/teacher" \
    --steps 800 --batch-size 64 --lr 1e-3 --train-layers 6 --encoder-lr 1e-4 --quiet
[ -f "$OUT/stores/k128/header.json" ] || kdnlu-mlm teach "$OUT/teacher" --corpus "$OUT/corpus" \
    --out "$OUT/stores" --top-k 1,8,32,128 --quiet
[ -d "$OUT/student_kd" ] || kdnlu-mlm distil "$OUT/teacher" --corpus "$OUT/corpus" \
    --store "$OUT/stores/k32" --out "$OUT/student_kd" --layers 0,2,4 --steps 1000 --quiet
[ -d "$OUT/student_cut" ] || kdnlu-mlm distil "$OUT/teacher" --corpus "$OUT/corpus" \
    --store "$OUT/stores/k32" --out "$OUT/student_cut" --layers 0,2,4 --steps 0 --quiet
for seed in $SEEDS; do
    for arm in student_kd student_cut; do
        name="finetune_${arm}_s$seed"
        if [ ! -f "$OUT/$name/checkpoints/best/model.safetensors" ]; then
            rm -rf "${OUT:?}/$name"
            kdnlu-train recipes/lowres/mtdnn.yaml --set encoder.path="$OUT/$arm" \
                --set name="$name" --set output_dir="$OUT" --set train.seed="$seed" --quiet
        fi
    done
done
