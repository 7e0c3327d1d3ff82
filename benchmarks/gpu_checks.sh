#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a lent machine (README: "Many networks in one
# step", "Same seed, same numbers"). Device time is scarce (about 15 minutes a task, every start
# counted), so the same steps run on the CPU at tiny sizes first (--dry-run, tests/test_gpu_checks.py)
# and a script error never costs a GPU minute.
#
#   PARTS="data tests sparse stacked paper" OUT=dir bash benchmarks/gpu_checks.sh    # on the GPU
#   DRY_RUN=1 OUT=dir bash benchmarks/gpu_checks.sh      # or --dry-run: on the CPU, tiny, in about 30 s
#
# Parts (PARTS, default all but speed, in this order):
#   data     CIFAR-10's parts that arrived this call joined once all have (tools/pack_data.py join);
#            MNIST's archives copied from .gpu-data/ into data/
#   tests    the tests that need CUDA: graph against eager bit for bit, one capture per batch shape,
#            killed runs resumed bit for bit, determinism (pytest -k "cuda or gpu"; skipped on a CPU)
#   sparse   notebook 10's 2:4 semi-structured speed-up (compute capability 8.0+; elsewhere the
#            reason it cannot run), semi-structured-<device>.json
#   stacked  network-steps per second, loop against stacked, 1-45 LeNet-300-100s and 3 and 15 Conv-2s
#            (STACKED_MODELS: lenet300,conv2; Conv-2 only once CIFAR-10 is here), stacked-<device>.json
#   paper    the paper-scale LeNet-300-100 IMP (5 seeds, 15 rounds x 50,000 iterations, ticket and both
#            controls, ENGINE=stacked), timed; resumes from build/paper-lenet when run again,
#            paper-lenet-<device>.json rewritten after every trained network
#   speed    benchmarks/speed.py (not in the default: measured on an H200 before)
# Every part writes into $OUT as it goes, and checks.json records each part's status, time and
# outcome as soon as it ends, so a call cut short by its limit still returns what it measured.
# $OUT keeps to what a device call returns: at most 8 files, none in a folder.
# Timeouts per part (seconds): DATA_TIMEOUT TESTS_TIMEOUT SPARSE_TIMEOUT STACKED_TIMEOUT PAPER_TIMEOUT.
set -uo pipefail  # no -e: a part that fails is recorded and the next part still runs

DRY_RUN=${DRY_RUN:-0}
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
export DRY_RUN
OUT=${OUT:-build/gpu-checks}
PY=${PYTHON:-python3}
PARTS=${PARTS:-data tests sparse stacked paper}
mkdir -p "$OUT" build
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
RECORD=$OUT/checks.json
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

if [[ "$DRY_RUN" == 1 ]]; then
    DEVICE=cpu
    TINY_SPARSE="--min-run-time 0.01"
    TINY_STACKED="--steps 1 --warmup 1 --max-networks 3"
    STACKED_MODELS=lenet300  # Conv-2's rows differ only by their data; a Conv-2 step on a CPU takes seconds
    TINY_PAPER="--tiny --seeds 2 --checkpoint-every-s 0"
    RUNS=$SCRATCH/paper-lenet  # fresh each time: a dry run must not resume an earlier one
    # The parts packed for the device stay where they are: a dry run joins only what it is pointed at.
    PACKED=${PACKED:-$SCRATCH/parts} STASH=${STASH:-$SCRATCH/stash} DATA_DEST=${DATA_DEST:-$SCRATCH/data}
else
    DEVICE=cuda
    TINY_SPARSE="" TINY_STACKED="" TINY_PAPER="--checkpoint-every-s ${CHECKPOINT_EVERY_S:-60}"
    RUNS=build/paper-lenet
fi
# The file names are the committed ones: benchmarks/<name> on the GPU.
STACKED_JSON=stacked-$DEVICE.json PAPER_JSON=paper-lenet-$DEVICE.json SPARSE_JSON=semi-structured-$DEVICE.json

want() { [[ " $PARTS " == *" $1 "* ]]; }
record() { "$PY" benchmarks/gpu_record.py "$RECORD" "$@"; }
status=0

# run NAME TIMEOUT COMMAND...: the command under a timeout, its output in log.txt, its outcome in checks.json
run() {
    local name=$1 limit=$2 start=$SECONDS rc outcome
    shift 2
    record "$name" outcome=running
    echo "== $name ($(date -u +%H:%M:%S), at most ${limit}s): $*" | tee -a "$LOG"
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    case $rc in 0) outcome=passed ;; 124 | 137) outcome=timed-out ;; *) outcome=failed ;; esac
    record "$name" outcome=$outcome rc=$rc seconds=$((SECONDS - start))
    [[ $rc == 0 ]] || status=1
    return "$rc"
}

# What ran where, without importing torch (seconds on a loaded CPU): each part's JSON says the rest.
gpu=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null || echo none)
torch_version=$("$PY" -c "import importlib.metadata as m; print(m.version('torch'))" 2>/dev/null || echo missing)
record device gpu="\"$gpu\"" torch="\"$torch_version\"" dry_run="$DRY_RUN" parts="\"$PARTS\"" \
    started="\"$(date -u +%FT%TZ)\""
echo "gpu: $gpu; torch $torch_version; parts: $PARTS" | tee -a "$LOG"

mkdir -p "${DATA_DEST:-data}"
[[ -d .gpu-data ]] && cp -r .gpu-data/. "${DATA_DEST:-data}/"  # MNIST (the same bytes), carried with the first call
if want data; then
    run data "${DATA_TIMEOUT:-180}" "$PY" tools/pack_data.py join --parts "${PACKED:-.gpu-data-parts}" \
        --stash "${STASH:-build/gpu-data-parts}" --dest "${DATA_DEST:-data}" --json "$SCRATCH/data.json"
    record data --json "$SCRATCH/data.json"
fi

if want tests; then
    run tests "${TESTS_TIMEOUT:-300}" "$PY" -m pytest -q -p no:cacheprovider -rA -k "cuda or gpu" \
        --junitxml="$SCRATCH/tests.xml" tests/test_masks.py tests/test_cli.py tests/test_imp.py \
        tests/test_rewinding.py tests/test_stacked.py
    record tests --junit "$SCRATCH/tests.xml"
fi

if want sparse; then
    # shellcheck disable=SC2086
    run sparse "${SPARSE_TIMEOUT:-120}" "$PY" benchmarks/semi_structured.py --out "$OUT/$SPARSE_JSON" $TINY_SPARSE
    record sparse --json "$OUT/$SPARSE_JSON"  # on a CPU: the reason it cannot run
fi

if want stacked; then
    # Rows measured in an earlier call of this warm machine are kept (CIFAR-10 arrives later than MNIST).
    [[ -f build/$STACKED_JSON && "$DRY_RUN" != 1 ]] && cp build/"$STACKED_JSON" "$OUT/$STACKED_JSON"
    # shellcheck disable=SC2086
    run stacked "${STACKED_TIMEOUT:-240}" "$PY" benchmarks/stacked.py --device "$DEVICE" \
        --models "${STACKED_MODELS:-lenet300,conv2}" --out "$OUT/$STACKED_JSON" $TINY_STACKED
    [[ -f $OUT/$STACKED_JSON && "$DRY_RUN" != 1 ]] && cp "$OUT/$STACKED_JSON" build/
fi

if want paper; then
    # shellcheck disable=SC2086
    run paper "${PAPER_TIMEOUT:-540}" "$PY" benchmarks/paper_lenet.py --device "$DEVICE" \
        --engine "${ENGINE:-stacked}" --runs "$RUNS" --out "$OUT/$PAPER_JSON" $TINY_PAPER
fi

if want speed; then
    run speed "${SPEED_TIMEOUT:-300}" "$PY" benchmarks/speed.py --device "$DEVICE" --out "$OUT/speed-$DEVICE.json"
fi

record --limits "$OUT" || status=1
echo "== done: status $status; $RECORD" | tee -a "$LOG"
exit $status
