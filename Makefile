# `make bench` runs the benchmarks (bench/run.sh), the sync benchmark included, and writes
# bench/README.md, bench/bench.png and the cost curves bench/curves-*.png;
# `make bench-smoke` is a quick run of the same, written to bench/results/smoke/.
# `make bench-curves` runs only the cost curves, every point of them (about 30 minutes), and
# writes bench/curves/README.md with its PNGs.
# `make bench-sync` runs only the sync benchmark, at its full default size (bench/sync.sh),
# written to bench/results/sync/ (bench/SYNC.md explains the figures and how they scale).
.PHONY: bench bench-smoke bench-curves bench-sync

bench:
	bash bench/run.sh

bench-smoke:
	BENCH_MIB=$${BENCH_MIB:-16} BENCH_SCALE=$${BENCH_SCALE:-0.01} bash bench/run.sh

bench-curves:
	BENCH_CURVES_ONLY=1 BENCH_SYNC=0 bash bench/run.sh

bench-sync:
	bash bench/sync.sh
