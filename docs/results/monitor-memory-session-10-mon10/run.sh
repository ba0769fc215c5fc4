#!/bin/bash
# side-by-side runs for the mon10 note; BIN, INPUTS, OUT, MODES
set -x
date -u
flock /work/notes/ksm.lock nice -n 10 $BIN bench memory --reuse --count 1000 --seed 1 --inputs $INPUTS --work /work/cache/mon10/w \
  --modes $MODES --ksm-wait 120s --ksm-pages-to-scan 1000 --out $OUT
date -u
