"""musicjudge.bench: the reward benchmark (``musicjudge bench``; docs/bench.md).

``musicjudge.bench.run(model_or_spec, benchmark, out=None)`` is the Python API's face of
:func:`musicjudge.bench.runner.run_benchmark` (:func:`musicjudge.api.bench_run`), imported on use."""


def __getattr__(name: str):
    if name == "run":
        from musicjudge.api import bench_run

        return bench_run
    raise AttributeError(f"module 'musicjudge.bench' has no attribute {name!r}")
