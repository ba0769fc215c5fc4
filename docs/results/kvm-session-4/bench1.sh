
N=${N:-30}; R=${R:-4}
POOL9P=$UNIPOOL_POOL
python3 /work/cache/kvmscale/exp/sub.py $POOL9P /run/tmp/sub sort-0000 >/dev/null
rm -rf /run/tmp/dense; cp -a /work/cache/kvmscale/c20/pool /run/tmp/dense
for where in ${WHERES:-old-tmpfs dense-tmpfs old-9p}; do
  UK=sort-0000; case $where in old-9p) P=$POOL9P;; old-tmpfs) P=/run/tmp/sub;; dense-tmpfs) P=/run/tmp/dense; UK=crc32-0004;; esac
  echo "== $where: unipool bench start --monitor kvm --loads shared,naive -n $N --rounds $R $UK"
  unipool bench start --pool $P --monitor kvm --loads shared,naive -n $N --rounds $R --json $UK > /run/tmp/b-$where.json 2>/run/tmp/e-$where.txt || { echo FAILED; tail -20 /run/tmp/e-$where.txt; continue; }
  python3 -c "
import json; r=json.load(open('/run/tmp/b-$where.json'))
for l in r['loads']: print('  %-7s inst %d failed %d load mean %.1f ms p50 %.1f ms p99 %.1f ms'%(l['load'],l['instances'],l['failed'],l['load_mean_us']/1e3,l['load_p50_us']/1e3,l['load_p99_us']/1e3))
print('  mismatches', r['mismatches'])"
  cp /run/tmp/b-$where.json $POOL9P/../exp-b-$where.json 2>/dev/null || true
done
