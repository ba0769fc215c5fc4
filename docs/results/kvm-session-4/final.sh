# final.sh: kmem.sh's per-VM kernel breakdown, 300 held VMs of hello-0017 (dense pool), shared
rm -rf /run/tmp/dense; cp -a /work/cache/kvmscale/c20/pool /run/tmp/dense; export UNIPOOL_POOL=/run/tmp/dense
KS=300 LOAD=shared UK=hello-0017 bash /work/cache/kvmscale/exp/kmem.sh
