#!/bin/bash
# In the emulated host: the 200-VM fleets, shared vs naive; new binary (PATH), then main's.
set -u
C=/work/cache/slots6
date -u +%T; uname -r
unipool bench memory --monitor kvm --reuse --count 200 --work $C/own/work --out $C/own/after200 --modes shared,naive 2>&1 | grep -v '^linking\|^analysing'
date -u +%T
unipool bench memory --flavor unikraft --monitor kvm --reuse --count 200 --work $C/uk/work --out $C/uk/after200 --modes shared,naive 2>&1 | grep -v '^linking\|^analysing'
date -u +%T
$C/bin/unipool bench memory --flavor unikraft --monitor kvm --reuse --count 200 --work $C/uk/work --out $C/uk/before200 --modes shared,naive 2>&1 | grep -v '^linking\|^analysing'
date -u +%T
