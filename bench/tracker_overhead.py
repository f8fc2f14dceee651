"""What each experiment-tracker sink costs a stage: opening its run, logging trainer records, closing it.

For every sink of `logging.sinks` (those whose package is installed), two stages (`train`, then `eval`) of a
fresh run folder open a tracker session through `gecko.tracking.session`, log `--records` metrics records
shaped like the trainer's (loss, lr, per-language loss) and close. The first stage pays the one-time costs
(imports, MLflow creating its SQLite store); the second shows the steady state. Everything is offline: W&B
in offline mode, MLflow's local store, trackio under `--out`.

  python bench/tracker_overhead.py --out /tmp/trackers --records 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (replaced)")
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.environ["TRACKIO_DIR"] = str(args.out / "trackio")  # read when trackio is first imported
    os.environ["WANDB_MODE"] = "offline"
    import importlib.util

    from gecko import tracking
    from gecko.config import SINK_PACKAGES, load_config

    rows = []
    for sink, package in SINK_PACKAGES.items():
        if package is not None and importlib.util.find_spec(package[0]) is None:
            print(f"{sink}: not installed, skipped")
            continue
        cfg = load_config(
            None, [f"run_dir={args.out / sink}", f"logging.sinks=[{sink}]", "logging.project=bench"]
        )
        for stage in ("train", "eval"):
            t0 = time.perf_counter()
            with tracking.session(cfg, stage) as tracker:
                t1 = time.perf_counter()
                tracker.start(0)
                for step in range(1, args.records + 1):
                    tracker.metrics(
                        {"step": step, "loss": 1 / step, "lr": 1e-3, "loss_by_lang": {"ko": 1.0, "en": 2.0}}
                    )
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            row = {
                "sink": sink,
                "stage": stage,
                "open_s": t1 - t0,
                "per_record_ms": 1e3 * (t2 - t1) / args.records,
                "close_s": t3 - t2,
            }
            rows.append(row)
            print(
                f"{sink:12s} {stage:6s} open {row['open_s']:6.2f} s   "
                f"{row['per_record_ms']:7.2f} ms/record   close {row['close_s']:5.2f} s",
                flush=True,
            )
    load = os.getloadavg()[0]
    print(
        json.dumps({"machine": platform.node(), "cpus": os.cpu_count(), "load_avg_1min": load, "rows": rows})
    )


if __name__ == "__main__":
    main()
