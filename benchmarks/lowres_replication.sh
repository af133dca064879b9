#!/usr/bin/env bash
# The low-resource replication of MT-DNN-KD and its ablations, end to end, on 2 CPU cores in
# about 90 minutes: 300 sampled training rows per task (recipes/lowres/), 3 seeds.
#
#   bash benchmarks/lowres_replication.sh        # from the repository root, venv active
#
# Two lanes of one thread each:
#   lane 1: the MT-DNN the teachers start from (seed 13) -> its encoder -> teachers a, b, c ->
#           the teachers' store -> the distillation ablations (recipes/bench/lowres_kd_ablation.yaml)
#   lane 2: the single-task and MT-DNN points of recipes/bench/lowres_replication.yaml, then,
#           once the store is written, its MT-DNN-KD point
# Every step is skipped when its output exists and benches resume, so running it again after an
# interruption goes on where it stopped. Reports: runs/bench/lowres_{replication,kd_ablation}/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/lowres
mkdir -p "$OUT"

train_once() {  # RECIPE NAME: train unless OUT/NAME holds a finished run
    if [ ! -f "$OUT/$2/checkpoints/best/model.safetensors" ]; then
        rm -rf "${OUT:?}/$2"
        kdnlu-train "$1" --set name="$2" --set output_dir="$OUT" --quiet
    fi
}

lane_teachers() {
    train_once recipes/lowres/mtdnn.yaml mtdnn_s13
    [ -d "$OUT/mtdnn_encoder" ] || kdnlu export "$OUT/mtdnn_s13" "$OUT/mtdnn_encoder"
    for x in a b c; do train_once "recipes/lowres/teacher_$x.yaml" "lowres_teacher_$x"; done
    kdnlu-teach "$OUT"/lowres_teacher_{a,b,c} --out "$OUT/kd_store" --quiet
    touch "$OUT/kd_store.done"
    kdnlu-bench recipes/bench/lowres_kd_ablation.yaml --threads 1 --quiet
}

rm -f "$OUT/kd_store.done"
lane_teachers > "$OUT/lane_teachers.log" 2>&1 &
teachers=$!
kdnlu-bench recipes/bench/lowres_replication.yaml --points single-task,mt-dnn --threads 1 \
    --quiet > "$OUT/lane_replication.log" 2>&1 || true  # a failed run is retried below
while [ ! -f "$OUT/kd_store.done" ]; do  # the student point needs the teachers' store
    kill -0 "$teachers" 2> /dev/null || { echo "lane 1 failed: see $OUT/lane_teachers.log" >&2; exit 1; }
    sleep 20
done
kdnlu-bench recipes/bench/lowres_replication.yaml --retry-failed --threads 1 --quiet \
    >> "$OUT/lane_replication.log" 2>&1 || true
wait "$teachers" || { echo "lane 1 failed: see $OUT/lane_teachers.log" >&2; exit 1; }
kdnlu-bench report runs/bench/lowres_replication
kdnlu-bench report runs/bench/lowres_kd_ablation
