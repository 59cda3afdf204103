#!/bin/bash
# The fixed costs of DVC's experiment queue against `dvc repro` (README, "When the queue pays
# off"): N stages that each write one byte, run by `dvc repro`, then queued one by one
# (`dvc exp run --queue`, as `sakd queue` does) and run 2 at a time. Prints wall seconds.
# Usage: N=6 JOBS=2 benchmarks/queue_overhead.sh   (works in a temp folder, removed after)
set -euo pipefail
N=${N:-6}
JOBS=${JOBS:-2}
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
cd "$R"
git init -q && git config user.email bench@example.org && git config user.name bench
dvc init -q
python - "$N" <<'PY'
import sys
import yaml
items = [f"s{i}" for i in range(int(sys.argv[1]))]
stage = {"cmd": "python -c \"open('${item}.txt', 'w').write('x')\"", "outs": ["${item}.txt"]}
yaml.safe_dump({"stages": {"work": {"foreach": items, "do": stage}}}, open("dvc.yaml", "w"))
PY
git add -A && git commit -qm stages
now() { date +%s.%N; }
t0=$(now); dvc repro -q >/dev/null; t1=$(now)
echo "dvc repro, $N stages: $(echo "$t1 - $t0" | bc) s"
rm -rf s*.txt .dvc/cache dvc.lock  # no run-cache: the queue must run every stage
t0=$(now)
for i in $(seq 0 $((N - 1))); do dvc exp run -q --queue -n "q$i" "work@s$i" >/dev/null; done
t1=$(now)
dvc exp run --run-all -j "$JOBS" >/dev/null 2>&1
t2=$(now)
echo "dvc exp run --queue, $N times: $(echo "$t1 - $t0" | bc) s"
echo "dvc exp run --run-all -j $JOBS: $(echo "$t2 - $t1" | bc) s"
t0=$(now); python -c "import torch, mlflow"; t1=$(now)
echo "python -c 'import torch, mlflow' (every stage's start-up): $(echo "$t1 - $t0" | bc) s"
