#!/bin/sh
# Run every atheris target for FUZZ_SECONDS each (default 600), one after another, from the seed corpora.
# Findings go to fuzz/crashes/<target>-*; each target's log (with libFuzzer's final statistics) to
# fuzz/logs/<target>.log. Limits: 1024 MB of memory (-rss_limit_mb) and 10 s per input (-timeout).
# Usage: fuzz/run.sh [TARGET...]   (targets: the fuzz_*.py names without prefix and suffix)
set -u
cd "$(dirname "$0")"
PY=${PYTHON:-../.venv/bin/python}
SECONDS_EACH=${FUZZ_SECONDS:-600}
TARGETS=${*:-"json model_json safetensors proof_json checkpoint watermark_keys statement pol_documents receipt zk_proof"}
mkdir -p crashes logs
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  echo "fuzz_$t: $SECONDS_EACH s"
  "$PY" "fuzz_$t.py" "corpus/$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -timeout=10 \
    -max_len=262144 -artifact_prefix="crashes/$t-" -print_final_stats=1 >"logs/$t.log" 2>&1 || status=1
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|Uncaught" "logs/$t.log" | head -5
done
exit $status
