#!/usr/bin/env bash
# The observation model of the demo's judge PRM (judge:smollm2: SmolLM2-135M asked "Is the latest step
# correct?"), shipped as package data so that decode reads that judge's scores through a model fitted on
# that judge's scores (not on Qwen2.5-Math-PRM's):
#   data/judge_smollm2_processbench_gsm8k.jsonl  the judge's score of every step of N labelled ProcessBench
#                                                GSM8K solutions (a seeded sample; step 1, ~1-2 h on 2 CPU cores)
#   data/judge_smollm2_obs.npz                   fit-obs on those scores: P(score | correct, fresh error, derailed)
#   data/judge_smollm2_points.npz                the labelled (min earlier, current) score pairs, for simulate-routing
#   data/trim_judge_smollm2.json                 the routing spec decode uses with --prm judge:smollm2 (its step
#                                                statistics are the default spec's), whose "info" holds the judge's
#                                                measured AUC and these commands
# Step 1 resumes where it stopped (samples nest: the first k scored are the sample of k) and is skipped when
# the file is complete; delete the file to score again. Usage: bash scripts/fit_judge_obs.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate 2>/dev/null || true
N=${1:-200}
SHARED=${SHARED:-../shared/data}
SCORES=data/judge_smollm2_processbench_gsm8k.jsonl
STATS="$SHARED/step_stats_math_train.npz"
C1="trimpomdp score-steps ../shared/data/processbench/gsm8k.json --prm judge:smollm2 --sample $N --seed 0 --resume -o $SCORES"
C2="trimpomdp fit-obs $SCORES --dims 1 -o data/judge_smollm2_obs.npz"
C3="python scripts/judge_obs_info.py points $SCORES -o data/judge_smollm2_points.npz"
C4="trimpomdp trim-model --step-stats ../shared/data/step_stats_math_train.npz --weak qwen2.5-1.5b-instruct --strong qwen2.5-7b-instruct --obs data/judge_smollm2_obs.npz --points data/judge_smollm2_points.npz -o data/trim_judge_smollm2.json"
C5="python scripts/judge_obs_info.py info $SCORES data/trim_judge_smollm2.json --prm judge:smollm2 --data 'ProcessBench GSM8K'"
run() { echo "+ $1" >&2; eval "${1//..\/shared\/data/$SHARED}" "${@:2}"; }
run "$C1"
run "$C2"
run "$C3"
run "$C4"
run "$C5" --command "\"$C1\"" --command "\"$C2\"" --command "\"$C3\"" --command "\"$C4\""
