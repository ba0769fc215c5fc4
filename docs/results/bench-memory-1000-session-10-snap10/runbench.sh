#!/bin/sh
# runbench.sh BIN WORK INPUTS OUT: the four modes at 1000 under the KSM lock
exec flock /work/notes/ksm.lock nice -n 10 "$1" bench memory --reuse --count 1000 --seed 1 --inputs "$3" --work "$2" \
  --modes shared-snapshot,aligned-ksm,shared-ksm,shared --modes-layouts-only --ksm-wait 120s --ksm-pages-to-scan 1000 --out "$4"
