set terminal pngcairo size 1400,650 font ',10'
set output 'bench/results/throughput.png'
set title 'Throughput per workload: median of 3 repetitions, bars from min to max (log scale)'
set datafile missing 'NaN'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'operations/s (see report: keys, reads, seeks or YCSB ops)'
set xtics rotate by -35 nomirror
set grid ytics
set key top right
set bmargin 6
plot 'bench/results/throughput.dat' using 2:3:4:xtic(1) title 'eloqstore' lc rgb '#1b9e77', '' using 5:6:7 title 'rocksdb' lc rgb '#d95f02', '' using 8:9:10 title 'lmdb' lc rgb '#7570b3'

set output 'bench/results/latency.png'
set title 'Point-read latency percentiles (median over repetitions; device: fio 4 KiB random read, queue depth = the workload client count)'
set style histogram clustered gap 1
set ylabel 'microseconds (log scale)'
plot 'bench/results/latency.dat' using 2:xtic(1) title 'eloqstore' lc rgb '#1b9e77', '' using 3 title 'rocksdb' lc rgb '#d95f02', '' using 4 title 'lmdb' lc rgb '#7570b3', '' using 5 title 'device (fio)' lc rgb '#999999'
