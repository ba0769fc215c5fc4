#!/bin/bash
C=/work/cache/slots6
date -u +%T
TAG=k5 K=556 $C/scale.sh
date -u +%T
