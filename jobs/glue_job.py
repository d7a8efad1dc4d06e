"""The script AWS Glue runs for carve: `carve deploy` uploads it to S3 as the job's ScriptLocation.

Everything happens in jobs.runtimes.glue (the runtime adapter), which turns the job's arguments into
the same `carve run` the console script runs. It also runs without Glue:

    python jobs/glue_job.py --JOB_NAME local --carve_mapping package:demo.yaml \\
        --carve_report_prefix reports/ --carve_endpoint_url http://127.0.0.1:8000

(plain PySpark: no GlueContext, so no Job.init/commit; the log says so).
"""

import sys
from pathlib import Path


def _importable() -> None:
    # `python jobs/glue_job.py` puts jobs/ itself first on sys.path, where run.py, spark.py, ...
    # would shadow top-level modules of those names; the checkout root is what belongs there.
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == here and (here / "__init__.py").exists():
        sys.path[0] = str(here.parent)


if __name__ == "__main__":
    _importable()
    from jobs.runtimes.glue import run_glue_job

    sys.exit(run_glue_job(sys.argv))
