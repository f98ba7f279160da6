"""Imports the generated DAGs with Airflow's own DagBag, as the scheduler would, and checks them
against the repository's slots/: no import error, the expected DAG ids, the task order; prints the
parse time. Run by deploy/check-deploy.sh in a venv with apache-airflow from PyPI."""

import os
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
os.environ.setdefault("TRIBUTARY_SLOTS", str(here.parent.parent / "slots"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.dag_processing.dagbag import DagBag  # noqa: E402

started = time.monotonic()
bag = DagBag(dag_folder=str(here / "tributary_dags.py"), safe_mode=False)
seconds = time.monotonic() - started

problems = [f"import error in {path}: {error}" for path, error in bag.import_errors.items()]
expected = {"tributary_bulk_qvp", "tributary_bulk_svp", "tributary_bl", "tributary_objects", "tributary_verify", "tributary_cutover"}
if set(bag.dag_ids) != expected:
    problems.append(f"DAG ids {sorted(bag.dag_ids)}, expected {sorted(expected)}")


def downstream(dag_id: str, task_id: str) -> set[str]:
    return set(bag.dags[dag_id].get_task(task_id).downstream_task_ids)


if not problems:
    checks = [
        (downstream("tributary_bulk_qvp", "check") == {f"snapshot_group_{k}" for k in (1, 2, 3)}, "bulk: check before 3 groups"),
        (all(downstream("tributary_bulk_qvp", f"snapshot_group_{k}") == {"apply"} for k in (1, 2, 3)), "bulk: every group before apply"),
        ("--group 2/3 --apply" in bag.dags["tributary_bulk_svp"].get_task("snapshot_group_2").bash_command, "bulk: group 2/3 of svp"),
        ("transform_party" in bag.dags["tributary_bl"].get_task("transform_contract").upstream_task_ids, "bl: party before contract"),
        ("transform_contract" in bag.dags["tributary_bl"].get_task("transform_claim").upstream_task_ids, "bl: contract before claim"),
        (downstream("tributary_cutover", "drain") == {"verify"} and downstream("tributary_cutover", "verify") == {"report"},
         "cutover: drain, verify, report"),
        (all(bag.dags[d].max_active_runs == 1 for d in expected), "max_active_runs=1 everywhere"),
        (bag.dags["tributary_objects"].get_task("sync_objects").skip_on_exit_code == [99], "99 skips"),
        ("--config" in bag.dags["tributary_verify"].get_task("verify").bash_command, "tasks name the configuration"),
    ]
    problems += [what for ok, what in checks if not ok]

print(f"airflow DagBag: {len(bag.dag_ids)} DAGs, {sum(len(bag.dags[d].tasks) for d in bag.dag_ids)} tasks, parsed in {seconds:.2f} s")
for problem in problems:
    print(f"FAIL {problem}")
sys.exit(1 if problems else 0)
