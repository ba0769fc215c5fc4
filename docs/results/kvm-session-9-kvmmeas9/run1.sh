set -x
F=/work/cache/kvmmeas9/f
cd $F
for way in process in-process; do
  extra=""; [ $way = in-process ] && extra=--monitor-in-process
  /usr/bin/time -f "%e s %M KiB maxrss" unipool bench memory --monitor kvm --reuse --count 50 --work $F/work --out $F/out-$way --modes shared,packed-naive $extra 2>&1 | grep -v '^\(starting\|sampling\)' | tail -25
done
/usr/bin/python3 /work/shared/tools/hostmem --settle 100 -- unipool bench monitor-process --spec $F/out-process/monitor-shared.json --hold 200s
