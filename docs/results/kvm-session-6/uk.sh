#!/bin/bash
cd /work/cache/slots6/probe
export PROBE_OUT=/run/tmp/probe
uname -r
for load in shared naive; do ./probe.sh $load ${K:-20} ${NAMES:-uk0001-apphello-c001}; done
