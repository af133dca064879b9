#!/usr/bin/env bash
# MT-DNN-KD at CPU scale over three student seeds, and the smaller students of
# recipes/bench/small_students.yaml, end to end on two lanes of one CPU thread each
# (docs/results.md): the seed-13 MT-DNN -> its encoder -> teachers a, b, c -> the teachers'
# store (logits, and hidden states at layers 2, 3, 4, 6) -> students of seeds 13, 14, 15 on one
# lane and the smaller students' bench on the other. About 2 + 3.5 hours on two idle cores.
#
#   bash benchmarks/cpu_scale_kd.sh        # from the repository root, venv active
#
# GLUE is found by the data-location rule (docs/data.md), e.g. KDNLU_DATA=PATH. Every step is
# skipped once done, and a run that was stopped goes on from its last checkpoint
# (`kdnlu-train --resume`; benches and kdnlu-teach resume themselves), so running the script
# again after a kill loses at most CHECKPOINT_EVERY steps of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-200}

train_once() {  # RECIPE OUTPUT_DIR NAME [--set ...]: train, resume, or skip when done
    local recipe=$1 out=$2 name=$3
    shift 3
    local run="$out/$name"
    if [ -f "$run/.done" ]; then
        return
    elif [ -f "$run/checkpoints/last/training.pt" ]; then
        echo "resuming $run"
        kdnlu-train --resume "$run" --quiet
    else
        rm -rf "${run:?}"
        echo "training $run"
        kdnlu-train "$recipe" --set name="$name" --set output_dir="$out" \
            --set train.checkpoint_every="$CHECKPOINT_EVERY" "$@" --quiet
    fi
    touch "$run/.done"
}

train_once recipes/mtdnn_small.yaml runs/issue4 mtdnn_small_s13 --set train.seed=13
[ -d runs/mtdnn_small_encoder ] || kdnlu export runs/issue4/mtdnn_small_s13 runs/mtdnn_small_encoder
{ train_once recipes/kd/teacher_a.yaml runs teacher_a; train_once recipes/kd/teacher_c.yaml runs teacher_c; } &
train_once recipes/kd/teacher_b.yaml runs teacher_b
wait $!
kdnlu-teach runs/teacher_a runs/teacher_b runs/teacher_c --out runs/kd_store \
    --hidden-layers 2 3 4 6 --quiet
python benchmarks/ensemble_dev.py runs/kd_store runs/teacher_a > runs/kd_ensemble_dev.txt
kdnlu-bench recipes/bench/small_students.yaml --threads 1 --quiet > runs/small_students.log 2>&1 &
bench=$!
for seed in 13 14 15; do
    train_once recipes/kd/student.yaml runs "kd_student_s$seed" --set train.seed="$seed"
done
python benchmarks/compare_runs.py --arm student runs/kd_student_s{13,14,15} \
    --arm MT-DNN runs/issue4/mtdnn_small_s13
wait "$bench" || echo "the small students' bench failed: see runs/small_students.log" >&2
kdnlu-bench report runs/bench/small_students
