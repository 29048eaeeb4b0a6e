#!/bin/sh
# A proof whose checkpoint is a symbolic link out of the proof directory: the verifier follows it.
set -eu
M="${MODELDEED:-.venv/bin/modeldeed}"
W=$(mktemp -d)
$M train --data digits --epochs 1 --model-args '{"width": 4}' --out "$W/m" --proof "$W/p" --checkpoint-every 8 --no-progress
mv "$W/p/checkpoints/step-00000008.safetensors" "$W/outside.safetensors"
ln -s "$W/outside.safetensors" "$W/p/checkpoints/step-00000008.safetensors"
$M pol verify "$W/p" --data digits; echo "exit status $? (expected 2 or 1 with 'is outside', never 0)"
