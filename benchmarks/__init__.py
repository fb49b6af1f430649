"""nnzoo's benchmarks: speed and memory of every model in both backends, next to references.

`python -m benchmarks.run` (or `make bench`, `nnzoo bench`) measures and writes the results, a
markdown table and a plot to `benchmarks/results/`. Each model runs in one subprocess per
backend (`benchmarks.worker`), where nnzoo's build and the references of that backend are timed
with interleaved repeats; peak memory is measured separately, each implementation alone.

Modules: `measure` (timers, peak memory), `flops` (analytic FLOP counts), `subjects` (what is
measured: nnzoo builds and reference implementations), `paths` (the execution paths of each
framework), `worker` (one subprocess's job), `targets` (the issue's targets, with notes on
what a miss is due to), `report` (table, plot), `run` (the CLI).
"""
