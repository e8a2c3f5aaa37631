# `make bench` runs the benchmarks (bench/run.sh) and writes bench/README.md and bench/bench.png;
# `make bench-smoke` is a quick run of the same, written to bench/results/smoke/.
.PHONY: bench bench-smoke

bench:
	bash bench/run.sh

bench-smoke:
	BENCH_MIB=$${BENCH_MIB:-16} BENCH_SCALE=$${BENCH_SCALE:-0.01} bash bench/run.sh
