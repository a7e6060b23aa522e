"""The cold start of every Lambda function: a new Python process importing its handler, against a
new process running a bare `import boto3`, in the same run.

    make build/layers/host-deps.built   # once (`make bench` does it)
    .venv/bin/python benchmarks/cold_start.py --repeats 7

Each function's process gets what Lambda gives it: its code folder as the working directory and
first on the path, and on PYTHONPATH the shared layer and the dependencies layer's packages (built
for this machine from the same pinned `lambda` extra, under build/layers/host-deps); the
interpreter runs with `-S`, so nothing of the development environment is importable, which has
more (cryptography, say, which PyMySQL imports when it finds it). The environment is the
function's from order_saga.functions with its secrets named and the Parameters and Secrets
extension's port set, as deployed and on the local stack (never read here: their presence decides
what the secrets client loads); tracing is off, as on
the local stack (`--traced` sets LAMBDA_TASK_ROOT so Powertools traces, as in AWS). The baseline
imports boto3 from the same packages, the same way. The time is the whole process, interpreter
start-up included, measured from outside; the CPU time is the process's own (user + system, from
the kernel's accounting of the child), which other load on the machine barely touches, so it is
the steadier figure on a shared machine; the memory is the process's peak resident set (VmHWM).
Runs alternate between the baseline and the functions, and each figure is the median of
`--repeats` runs, so a change in the machine's other load touches all of them alike.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from figures import Figure, print_table

from devstack.paths import REPO_ROOT
from order_saga.functions import FUNCTIONS, FunctionSpec

LAYER = REPO_ROOT / "layers" / "common" / "python"
PACKAGES = REPO_ROOT / "build" / "layers" / "host-deps"
SECRETS = {  # as deployed: named, never read here, and the extension's port they are read through
    "MYSQL_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-app-AbCdEf",
    "PAYMENT_GATEWAY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:gateway-AbCdEf",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "2773",
}


# The child reports its own peak resident set (VmHWM belongs to the exec'd program: the getrusage
# figure would include the benchmark process it was forked from).
PEAK = "; print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn(code: str, cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak MiB) of a new interpreter running `code`."""
    cpu_before, began = cpu_of_children(), time.perf_counter()
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-S", "-c", code + PEAK],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed, cpu = time.perf_counter() - began, cpu_of_children() - cpu_before
    if done.returncode:
        raise SystemExit(f"{code!r} in {cwd} failed with {done.returncode}: {done.stderr}")
    return elapsed, cpu, int(done.stdout.split()[-1]) / 1024


def function_env(spec: FunctionSpec, *, traced: bool) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{LAYER}:{PACKAGES}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env |= spec.all_environment | SECRETS
    env |= {"AWS_LAMBDA_FUNCTION_NAME": spec.name, "AWS_DEFAULT_REGION": "us-east-1"}
    if traced:
        env["LAMBDA_TASK_ROOT"] = str(REPO_ROOT / spec.code_dir)
    return env


def measure(*, repeats: int = 5, traced: bool = False) -> list[Figure]:
    if not PACKAGES.is_dir():
        raise SystemExit(f"{PACKAGES} is missing: make build/layers/host-deps.built")
    baseline_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(PACKAGES),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # Byte-code is compiled once beforehand (Lambda ships it compiled or compiles once per sandbox).
    compile_all = [
        sys.executable,
        "-m",
        "compileall",
        "-q",
        str(LAYER),
        str(PACKAGES),
        str(REPO_ROOT / "functions"),
    ]
    subprocess.run(compile_all, check=True)  # noqa: S603
    runs: dict[str, list[tuple[float, float, float]]] = {"import boto3": []}
    for _ in range(repeats):
        runs["import boto3"].append(spawn("import boto3", REPO_ROOT, baseline_env))
        for spec in FUNCTIONS:
            module = spec.handler.rsplit(".", 1)[0]
            runs.setdefault(spec.name, []).append(
                spawn(
                    f"import {module}",
                    REPO_ROOT / spec.code_dir,
                    function_env(spec, traced=traced),
                )
            )
    seconds, cpu, memory = (
        {name: statistics.median(run[i] for run in values) for name, values in runs.items()} for i in range(3)
    )
    base, base_cpu = seconds["import boto3"], cpu["import boto3"]
    variant = f"tracing {'on' if traced else 'off'}, secrets named as deployed"
    print(f"cold start, whole process, median of {repeats} ({variant})")
    print("| function | import s | / import boto3 | CPU s | / import boto3 | peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in runs:
        print(
            f"| {name} | {seconds[name]:.3f} | {seconds[name] / base:.2f} | {cpu[name]:.3f} "
            f"| {cpu[name] / base_cpu:.2f} | {memory[name]:.0f} |"
        )
    slowest = max((name for name in runs if name != "import boto3"), key=seconds.__getitem__)
    return [
        Figure(f"cold import of a step handler (slowest: {slowest})", seconds[slowest], base, "s", "<= 2",
               higher_is_better=False),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--traced", action="store_true", help="trace as in AWS (imports the X-Ray SDK)")
    args = parser.parse_args()
    print_table(measure(repeats=args.repeats, traced=args.traced))


if __name__ == "__main__":
    main()
