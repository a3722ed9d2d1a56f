#!/bin/bash
# The reference mode at the fast-scorer issue's size (64 TruthfulQA claims, 64 iterations), seeds 0-2,
# float32. On 2 AVX2 cores a seed takes hours, more than one session: each run checkpoints into
# bench/results/reference_f32_tqa64/ after its iterations, and this same command, run again, skips the
# finished seeds and resumes the unfinished one. Run it with nothing else on the cores. Late iterations
# take minutes; to lose none, stop it with `bench/reference_f32.sh --stop`, which waits for the next
# checkpoint and then kills it. The fast runs of the same seeds are
# bench/results/bench_tqa64_fast_f32_avx2_*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
R=bench/results/reference_f32_tqa64
if [ "${1:-}" = --stop ]; then
    ck=$(ls $R/seed*-reference.checkpoint.json 2>/dev/null | head -1)
    if [ -n "$ck" ]; then
        before=$(stat -c %Y "$ck")
        while [ -e "$ck" ] && [ "$(stat -c %Y "$ck")" = "$before" ]; do sleep 1; done
    fi
    pkill -f "icm bench .*--checkpoint-dir $R" || true
    exit 0
fi
exec .venv/bin/icm bench data/paper/truthfulqa/train_truthfulqa.json --task truthfulqa --limit 64 \
    --iterations 64 --seeds 0,1,2 --modes reference --dtype float32 --checkpoint-dir $R --report $R/bench.json
