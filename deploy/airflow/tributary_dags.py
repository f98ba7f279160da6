"""Airflow DAGs for Tributary's finishing steps, generated from the configuration directory (slots/).

`tributary run` is the daemon (systemd or Kubernetes); these DAGs run the CLI's one-shot commands
around it, one DAG per concern, all from the same YAML the daemon reads:

    tributary_bulk_<source>   check -> snapshot groups 1..N -> apply   (the bulk load of one source; manual)
    tributary_bl              one task per BL model, in the order the models read each other (manual)
    tributary_objects         sync-objects (hourly; skipped when there was nothing to copy)
    tributary_verify          verify: every table and key indicator, the object files (daily)
    tributary_cutover         drain -> verify -> status report (manual: the switchover)

Exit codes of the CLI, as the tasks use them: 0 done; 99 nothing to do (the task is skipped);
1 failure; 2 configuration or usage error. Parsing is cheap: YAML files are read, nothing is
connected to and nothing is run at import.

The bulk is N tasks at once, each `snapshot --source S --group K/N --apply`: group K of the
source's tables copied as a table snapshot on whichever worker runs it (the first to start makes
the slot, the others wait for it), loaded into STG and merged there by LSN; a failed group is
retried for the tables it lacks. N = 1 is one plain `snapshot` task.

Environment: TRIBUTARY_SLOTS (the configuration directory; default /etc/tributary/slots, or the
repository's slots/ beside this file), TRIBUTARY_BIN (default `tributary`), TRIBUTARY_BULK_GROUPS
(N, default 3), TRIBUTARY_BULK_POOL (the Airflow pool the groups take slots of; default
default_pool): as many groups copy at once as the pool has free slots.
"""

import os
from datetime import datetime
from pathlib import Path

import yaml
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

TARGET_FILE = "tributary.yaml"
NOTHING_TO_DO = 99


def slots_directory() -> Path:
    configured = os.environ.get("TRIBUTARY_SLOTS")
    if configured:
        return Path(configured)
    system = Path("/etc/tributary/slots")
    return system if system.is_dir() else Path(__file__).resolve().parent.parent.parent / "slots"


def read_yaml(path: Path) -> dict:
    with path.open() as handle:
        return yaml.safe_load(handle) or {}


def sources(directory: Path) -> list[str]:
    """The sources' names: one YAML per source beside tributary.yaml (its `source:`, else its file name)."""
    names = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == TARGET_FILE:
            continue
        names.append(read_yaml(path).get("source") or path.stem)
    return names


def models(directory: Path) -> dict[str, list[str]]:
    """BL model -> the models it reads (its inputs in schema bl, by table name)."""
    found: dict[str, dict] = {}
    for path in sorted((directory / "bl").glob("*.yaml")):
        found[path.stem] = read_yaml(path)
    table_of = {name: (spec.get("table") or f"bl.{name}") for name, spec in found.items()}
    model_of = {table: name for name, table in table_of.items()}
    reads: dict[str, list[str]] = {}
    for name, spec in found.items():
        upstream = [model_of[i["table"]] for i in spec.get("inputs", []) if isinstance(i, dict) and i.get("table") in model_of]
        reads[name] = sorted(set(u for u in upstream if u != name))
    return reads


def command(*arguments: str) -> str:
    binary = os.environ.get("TRIBUTARY_BIN", "tributary")
    config = str(slots_directory())
    return " ".join([binary, *arguments, "--config", config])


def task(task_id: str, *arguments: str, **options) -> BashOperator:
    # 99 is the CLI's "nothing to do": the task is skipped, not failed.
    return BashOperator(task_id=task_id, bash_command=command(*arguments), skip_on_exit_code=NOTHING_TO_DO, **options)


def bulk_groups() -> int:
    text = os.environ.get("TRIBUTARY_BULK_GROUPS", "3")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"TRIBUTARY_BULK_GROUPS={text}: give the number of groups the bulk is copied in, 1 or more")
    return int(text)


def snapshot_tasks(source: str) -> list[BashOperator]:
    groups = bulk_groups()
    if groups == 1:
        return [task("snapshot", "snapshot", "--source", source)]
    pool = {"pool": os.environ["TRIBUTARY_BULK_POOL"]} if os.environ.get("TRIBUTARY_BULK_POOL") else {}
    return [task(f"snapshot_group_{index}", "snapshot", "--source", source, "--group", f"{index}/{groups}", "--apply", **pool)
            for index in range(1, groups + 1)]


DEFAULTS = {"owner": "tributary", "retries": 1}
START = datetime(2026, 1, 1)
directory = slots_directory()

for source in sources(directory):
    with DAG(dag_id=f"tributary_bulk_{source}", description=f"The bulk load of {source}: check, snapshot, apply",
             schedule=None, start_date=START, catchup=False, max_active_runs=1, default_args=DEFAULTS,
             tags=["tributary", "bulk"]) as dag:
        task("check", "check") >> snapshot_tasks(source) >> task("apply", "apply", "--once", "--source", source)
    globals()[dag.dag_id] = dag

reads = models(directory)
if reads:
    with DAG(dag_id="tributary_bl", description="The BL models, each after the models it reads",
             schedule=None, start_date=START, catchup=False, max_active_runs=1, default_args=DEFAULTS,
             tags=["tributary", "bl"]) as dag:
        tasks = {name: task(f"transform_{name}", "transform", "--model", name) for name in reads}
        for name, upstream in reads.items():
            for model in upstream:
                tasks[model] >> tasks[name]
    globals()[dag.dag_id] = dag

with DAG(dag_id="tributary_objects", description="The object files: new and changed ones copied to the target bucket",
         schedule="@hourly", start_date=START, catchup=False, max_active_runs=1, default_args=DEFAULTS,
         tags=["tributary", "objects"]) as dag:
    task("sync_objects", "sync-objects")
globals()[dag.dag_id] = dag

with DAG(dag_id="tributary_verify", description="Source against target: tables, key indicators, files",
         schedule="@daily", start_date=START, catchup=False, max_active_runs=1, default_args=DEFAULTS,
         tags=["tributary", "verify"]) as dag:
    task("verify", "verify")
globals()[dag.dag_id] = dag

with DAG(dag_id="tributary_cutover", description="Switchover: drain (sources read-only), verify, report",
         schedule=None, start_date=START, catchup=False, max_active_runs=1, default_args={**DEFAULTS, "retries": 0},
         tags=["tributary", "cutover"]) as dag:
    (task("drain", "drain", "--require-read-only", "--timeout", "3600", "--no-verify")
     >> task("verify", "verify")
     >> task("report", "status", "--json"))
globals()[dag.dag_id] = dag
