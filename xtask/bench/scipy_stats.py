"""SciPy's side of `stats_vs_scipy`: the permutation test and the BCa bootstrap interval of a
difference in means, on the data `crystallize-bench stats` wrote.

Usage: python3 scipy_stats.py DATA.json [REPEAT]

Prints `scipy_permutation_s=...` and `scipy_bootstrap_s=...` (the fastest of REPEAT runs), with
the p-value and the interval for comparison, on stdout.
"""

import json
import sys
import time

import numpy as np
import scipy
from scipy import stats


def difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def fastest(repeat, run):
    best, result = None, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    resamples = int(data["resamples"])
    permutation_s, test = fastest(
        repeat,
        lambda: stats.permutation_test(
            (x, y),
            difference,
            vectorized=True,
            n_resamples=resamples,
            alternative="two-sided",
            random_state=np.random.default_rng(1),
        ),
    )
    bootstrap_s, interval = fastest(
        repeat,
        lambda: stats.bootstrap(
            (x, y),
            difference,
            vectorized=True,
            n_resamples=resamples,
            method="BCa",
            confidence_level=0.95,
            random_state=np.random.default_rng(1),
        ),
    )
    ci = interval.confidence_interval
    print(f"scipy_version={scipy.__version__}")
    print(f"scipy_permutation_p={test.pvalue:.4f}")
    print(f"scipy_permutation_s={permutation_s:.5f}")
    print(f"scipy_bootstrap_low={ci.low:.5f}")
    print(f"scipy_bootstrap_high={ci.high:.5f}")
    print(f"scipy_bootstrap_s={bootstrap_s:.5f}")


if __name__ == "__main__":
    main()
