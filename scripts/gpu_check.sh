#!/usr/bin/env bash
# The GPU checks of the study, as one script for a CUDA machine: the throughput / memory / overhead / packing benchmark,
# a paper-scale spot check (DeepLab-ResNet34 + ASPP heads of width 1024 at 288x384, bf16, generated data), a smoke run
# of the methods on the GPU, same seed -> same numbers there, and the CUDA-relevant tests (most important first).
# Usage: bash scripts/gpu_check.sh OUTDIR [ITERATIONS]   (writes log.txt, gpu_bench.json, paper_*.json, tests.txt)
set -uo pipefail
out=${1:?output folder}; iters=${2:-100}
mkdir -p "$out"
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MTLPRUNE_DATA=/tmp/mtlprune-gpu MTLPRUNE_RUNS=/tmp/mtlprune-gpu/runs
py=${PYTHON:-python3}
exec > >(tee "$out/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
echo "== benchmark"
timeout 150 $py benchmarks/gpu_bench.py --out "$out/gpu_bench.json" --seconds 3 --pack 1 4 2>&1 | grep -v Warn
echo "== paper-scale spot check ($iters iterations)"
paper=(--set model.backbone=deeplab_resnet34 --set model.head_width=1024 --set "model.head_rates=[6,12,18,24]"
       --set model.dropout=0.5 --set train.batch_size=16 --set train.eval_batch_size=16 --set train.precision=bf16
       --set train.iterations=$iters --set data.synthetic.height=288 --set data.synthetic.width=384
       --set data.synthetic.n_train=320 --set data.synthetic.n_test=64)
for m in dense adapmtl; do
  sp=0.9; [ "$m" = dense ] && sp=0.0
  timeout 200 $py -m mtlprune run --profile quick --method $m --sparsity $sp "${paper[@]}" --json --no-progress \
    2>"/tmp/paper_$m.err" | tail -1 > "$out/paper_$m.json" || tail -5 "/tmp/paper_$m.err"
  $py -c "import json,sys; s=json.load(open('$out/paper_$m.json')); print(s['method'], s['device'], 'train_seconds', round(s['train_seconds'],1), 'sparsity', round(s['sparsity']['overall'],4), 'delta_t', s['delta_t']['mean'])"
done
echo "== smoke runs on the GPU"
for m in dense magnitude_global snip lth str disparse_dynamic adapmtl; do
  sp=0.9; [ "$m" = dense ] && sp=0.0
  timeout 90 $py -m mtlprune run --profile smoke --method $m --sparsity $sp --json --no-progress 2>/tmp/smoke.err | tail -1 \
    | $py -c "import json,sys; s=json.loads(sys.stdin.read()); print('$m', s['device'], 'sparsity', round(s['sparsity']['overall'],4), 'delta_t', s['delta_t']['mean'])" \
    || tail -5 /tmp/smoke.err
done
echo "== same seed, same numbers on the GPU (AdapMTL smoke, two fresh stores)"
for r in a b; do MTLPRUNE_RUNS=/tmp/mtlprune-gpu/runs-$r timeout 90 $py -m mtlprune run --profile smoke --method adapmtl \
  --sparsity 0.9 --json --no-progress 2>/dev/null | tail -1 > /tmp/det_$r.json; done
$py -c "
import json
a, b = (json.load(open(f'/tmp/det_{r}.json')) for r in 'ab')
print('identical metrics' if a['metrics'] == b['metrics'] else 'DIFFERENT metrics', a['metrics']['seg'])"
echo "== tests on the GPU (device auto = cuda)"
timeout 120 $py -m pytest -q -m "not slow" -p no:cacheprovider tests/test_adapmtl.py tests/test_pruning.py \
  tests/test_schedules.py tests/test_runner.py 2>&1 | tail -30 > "$out/tests.txt"; tail -3 "$out/tests.txt"
