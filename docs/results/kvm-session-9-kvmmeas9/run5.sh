F=/work/cache/kvmmeas9/f
cd $F
cp "$(command -v unipool)" $F/unipool-copy
$F/unipool-copy bench monitor-process --spec $F/o100b-process/monitor-shared.json --hold 330s > $F/run5-monitor.out 2>&1 &
p=$!
t0=$(date +%s)
for i in $(seq 1 11); do
  sleep 30
  held=$(grep -c resident $F/run5-monitor.out)
  echo "t=$(( $(date +%s) - t0 ))s held=$held $(grep -E '^(Pss|Pss_Anon|Pss_File|Pss_Shmem):' /proc/$p/smaps_rollup | tr -s ' ' | tr '\n' ' ') VmPTE=$(grep VmPTE /proc/$p/status | tr -s ' ')"
done
wait
rm -f $F/unipool-copy $F/run5-monitor.out
