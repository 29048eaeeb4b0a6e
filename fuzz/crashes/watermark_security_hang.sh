#!/bin/sh
# `watermark security` with a huge security level or trigger-set size does not finish.
M="${MODELDEED:-.venv/bin/modeldeed}"
timeout 60 $M watermark security --classes 10 --bits 100000; echo "exit status $? (124: killed after 60 s)"
timeout 60 $M watermark security --classes 10 --size 100000000; echo "exit status $? (124: killed after 60 s)"
