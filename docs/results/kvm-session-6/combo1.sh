#!/bin/bash
C=/work/cache/slots6
date -u +%T
TAG=k1 K=112 $C/scale.sh
date -u +%T
