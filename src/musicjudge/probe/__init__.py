"""musicjudge.probe: loss-profile probes (``musicjudge probe``; docs/probe.md).

``musicjudge.probe.run(config=None, out=None, **options)`` is the Python API's face of the probe
runner (:func:`musicjudge.api.probe_run`; in memory when ``out`` is None), imported on use."""


def __getattr__(name: str):
    if name == "run":
        from musicjudge.api import probe_run

        return probe_run
    raise AttributeError(f"module 'musicjudge.probe' has no attribute {name!r}")
