"""The trivial benchmark experiment through the Python ancestor, crystallize-ml.

Usage: python ancestor.py UNITS STORE_DIR [REPEAT]

Runs the same experiment as crates `crystallize-bench`'s `trivial`: two conditions (a fair and a
loaded coin), one step that draws one number from the unit's seeded generator and scales it by
the coin's bias, one metric, UNITS units in all, stored under STORE_DIR. Prints `python_s=...`
(the fastest of REPEAT runs, wall time of the run call, interpreter start and import excluded)
and `python_version=...` on stdout. Works with crystallize-ml 0.27 (Experiment, pipeline steps,
treatments, plugins) and 1.0.0a2 (explore()).
"""

import contextlib
import importlib.metadata
import io
import logging
import os
import random
import sys
import time

import crystallize

VERSION = importlib.metadata.version("crystallize-ml")
# 0.2x logs a line per unit at INFO; quieting it makes the ancestor faster, never slower, so the
# ratio reported is the conservative one.
logging.getLogger("crystallize").setLevel(logging.WARNING)


def run_v1(replicates, store):
    """crystallize-ml 1.x: explore(fn, configs, replicates)."""

    def trivial(config, ctx):
        value = random.random() * config["bias"]
        ctx.record("value", value)
        return value

    configs = {"baseline": {"bias": 0.5}, "loaded": {"bias": 0.7}}
    with contextlib.redirect_stdout(io.StringIO()):
        crystallize.explore(
            trivial, configs, replicates, seed=7, audit="none", progress=False, store_root=store
        )


def run_v027(replicates, store):
    """crystallize-ml 0.2x: an Experiment with a datasource, a one-step pipeline, a treatment."""
    from crystallize import (
        ArtifactPlugin,
        Experiment,
        Pipeline,
        SeedPlugin,
        SerialExecution,
        data_source,
        pipeline_step,
        treatment,
    )

    @data_source
    def coin(ctx):
        return {"bias": ctx.get("bias", 0.5)}

    @pipeline_step()
    def draw(data, ctx):
        value = random.random() * data["bias"]
        ctx.metrics.add("value", value)
        return {"value": value}

    loaded = treatment("loaded", {"bias": 0.7})
    experiment = Experiment(
        datasource=coin(),
        pipeline=Pipeline([draw()]),
        plugins=[ArtifactPlugin(root_dir=store), SeedPlugin(seed=7), SerialExecution()],
        treatments=[loaded],
        replicates=replicates,
        name="trivial",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        result = experiment.run()
    errors = getattr(result, "errors", None)
    if errors:
        raise SystemExit(f"crystallize-ml {VERSION} reported errors: {errors}")


def main():
    units = int(sys.argv[1])
    store = sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    replicates = max(1, units // 2)
    run = run_v1 if hasattr(crystallize, "explore") else run_v027
    best = None
    for attempt in range(repeat):
        target = os.path.join(store, f"attempt-{attempt}")
        os.makedirs(target, exist_ok=True)
        started = time.perf_counter()
        run(replicates, target)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    print(f"python_version={VERSION}")
    print(f"python_units={replicates * 2}")
    print(f"python_s={best:.6f}")


if __name__ == "__main__":
    main()
