# big.sh: the start benchmark (old fleet over 9p and tmpfs, a dense pool), then scale.sh
POOL9P=$UNIPOOL_POOL
echo "== start: $(date -u +%T)"
N=30 R=3 WHERES="old-9p old-tmpfs dense-tmpfs" bash /work/cache/kvmscale/exp/bench1.sh
echo "== scale: $(date -u +%T)"
export UNIPOOL_POOL=/work/cache/kvmscale/c20/pool
bash /work/cache/kvmscale/exp/scale.sh
echo "== end: $(date -u +%T)"
