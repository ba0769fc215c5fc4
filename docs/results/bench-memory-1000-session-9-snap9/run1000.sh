#!/bin/sh
# snap9 (issue 18, session 9): the 1000-unikernel table on both fleets, each twice, in
# two orders of the modes. W: a work folder; $W/unipool: bin/unipool of this branch.
# The fleet (this branch's guest) first, no KSM:
#   nice -n 10 $W/unipool bench memory --count 1000 --seed 1 --inputs distinct \
#     --modes shared,shared-snapshot,shared-ksm,aligned-ksm --modes-layouts-only --work $W/w1000 --fleet-only
# then both request sets on it (snapshots are taken before the request is read), under the KSM lock.
set -e
W=${W:?set W}
cd $W
run() { # inputs order out
  flock /work/notes/ksm.lock nice -n 10 $W/unipool bench memory --reuse --count 1000 --inputs $1 --work $W/w1000 \
    --modes $2 --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/$3 > $W/$3.log 2>&1
}
A=shared,shared-snapshot,shared-ksm,aligned-ksm
B=aligned-ksm,shared-ksm,shared-snapshot,shared
run distinct $A d1000
run repeated $A r1000
run distinct $B d1000-rev
run repeated $B r1000-rev
# A third run of each fleet (05:18 UTC):
run distinct $A d1000-3
run repeated $B r1000-3rev
