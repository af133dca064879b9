#!/usr/bin/env bash
# MT-DNN-KD at CPU scale (docs/results.md), in stages that each fit one sitting on two idle
# cores. Every run uses one CPU thread; where a stage has three runs, all three run at once.
#
#   bash benchmarks/cpu_scale_kd.sh [STAGE...]     # from the repository root, venv active
#   PLAN=1 bash benchmarks/cpu_scale_kd.sh STAGE   # print the commands instead of running them
#
# Stages (default: students):
#   teachers    the seed-13 MT-DNN -> its encoder -> teachers a, b, c (recipes/kd/)
#   students    teachers -> their logit store -> the ensemble's dev scores -> KD students of
#               seeds 13, 14, 15 -> their comparison with the MT-DNN seeds of the records file
#   selection   teachers, and d, e, f -> the store of each task's best 3 of the 6 teachers
#               (kdnlu-teach --keep-best 3) -> a KD student of seed 13 from it
#   small-gold  the gold-label smaller students of recipes/bench/small_students.yaml (no teachers)
#   small-kd    teachers -> their store with hidden states at layers 2, 3, 4, 6 -> the smaller
#               students that distil (logits; logits and hidden states)
#
# Measured on two idle cores, one thread per run: the MT-DNN about 35 minutes, the three
# teachers at once about 40, a logit store 10, three students at once about 60, one student
# alone about 30 (the selection stage after the teachers: about 45 + 10 + 30 minutes).
#
# GLUE is found by the data-location rule (docs/data.md), e.g. KDNLU_DATA=PATH. Every step is
# skipped once done, and a run that was stopped goes on from its last checkpoint
# (`kdnlu-train --resume`; benches and kdnlu-teach resume themselves), so running the script
# again after a kill loses at most CHECKPOINT_EVERY steps of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-200}
RECORDS=docs/results/cpu_scale_runs.jsonl

step() {  # print the command (PLAN=1) or run it
    if [ -n "${PLAN:-}" ]; then echo "$*"; else "$@"; fi
}

train_once() {  # RECIPE OUTPUT_DIR NAME [--set ...]: train, resume, or skip when done
    local recipe=$1 out=$2 name=$3
    shift 3
    local run="$out/$name"
    local command=(kdnlu-train "$recipe" --set name="$name" --set output_dir="$out"
        --set train.checkpoint_every="$CHECKPOINT_EVERY" "$@" --quiet)
    if [ -n "${PLAN:-}" ]; then
        echo "${command[*]}"
        return
    elif [ -f "$run/.done" ]; then
        return
    elif [ -f "$run/checkpoints/last/training.pt" ]; then
        echo "resuming $run"
        kdnlu-train --resume "$run" --quiet
    else
        rm -rf "${run:?}"
        echo "training $run"
        "${command[@]}"
    fi
    touch "$run/.done"
}

at_once() {  # run the given train_once calls (each one quoted string) side by side
    local pids=() call
    for call in "$@"; do
        if [ -n "${PLAN:-}" ]; then eval "train_once $call"; else eval "train_once $call" & pids+=($!); fi
    done
    local pid
    for pid in "${pids[@]}"; do wait "$pid"; done
}

store_once() {  # OUT TEACHER_RUN... [kdnlu-teach options]: write a store (it resumes itself)
    local out=$1
    shift
    step kdnlu-teach "$@" --out "$out" --quiet
}

teachers() {
    train_once recipes/mtdnn_small.yaml runs/issue4 mtdnn_small_s13 --set train.seed=13
    [ -z "${PLAN:-}" ] && [ -d runs/mtdnn_small_encoder ] ||
        step kdnlu export runs/issue4/mtdnn_small_s13 runs/mtdnn_small_encoder
    at_once "recipes/kd/teacher_a.yaml runs teacher_a" "recipes/kd/teacher_b.yaml runs teacher_b" \
        "recipes/kd/teacher_c.yaml runs teacher_c"
}

students() {
    teachers
    store_once runs/kd_store runs/teacher_a runs/teacher_b runs/teacher_c
    step python benchmarks/ensemble_dev.py runs/kd_store runs/teacher_a
    at_once "recipes/kd/student.yaml runs kd_student_s13 --set train.seed=13" \
        "recipes/kd/student.yaml runs kd_student_s14 --set train.seed=14" \
        "recipes/kd/student.yaml runs kd_student_s15 --set train.seed=15"
    step python benchmarks/compare_runs.py --records "$RECORDS" \
        --arm student runs/kd_student_s13 runs/kd_student_s14 runs/kd_student_s15 \
        --arm MT-DNN mtdnn_small_s13 mtdnn_small_s14 mtdnn_small_s15
}

selection() {
    teachers
    at_once "recipes/kd/teacher_d.yaml runs teacher_d" "recipes/kd/teacher_e.yaml runs teacher_e" \
        "recipes/kd/teacher_f.yaml runs teacher_f"
    store_once runs/kd_store_best3 runs/teacher_{a,b,c,d,e,f} --keep-best 3
    step python benchmarks/ensemble_dev.py runs/kd_store_best3 runs/teacher_a
    train_once recipes/kd/student.yaml runs kd_student_best3_s13 --set train.seed=13 \
        --set distill.store=runs/kd_store_best3
}

small_gold() {
    step kdnlu-bench recipes/bench/small_students.yaml --points gold-3l,gold-2l --jobs 2 --threads 1 --quiet
}

small_kd() {
    teachers
    store_once runs/kd_store runs/teacher_a runs/teacher_b runs/teacher_c --hidden-layers 2 3 4 6
    step kdnlu-bench recipes/bench/small_students.yaml --points kd-3l,kd-hidden-3l,kd-2l,kd-hidden-2l \
        --jobs 2 --threads 1 --quiet
    step kdnlu-bench report runs/bench/small_students
}

[ $# -gt 0 ] || set -- students
for stage in "$@"; do
    case $stage in
    teachers | students | selection) "$stage" ;;
    small-gold) small_gold ;;
    small-kd) small_kd ;;
    *) echo "unknown stage '$stage': teachers, students, selection, small-gold or small-kd" >&2; exit 2 ;;
    esac
done
