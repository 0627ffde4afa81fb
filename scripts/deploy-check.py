#!/usr/bin/env python3
"""The Kubernetes manifest, checked without a cluster (none runs here; the SLURM script is
run for real by scripts/slurm-test.sh):

- deploy/kubernetes/study-job.yaml is a valid batch/v1 Job against Kubernetes' own schema
  (`kubernetes-validate --strict`, installed from PyPI when missing);
- it keeps the SLURM path's semantics: every pod runs `lenet study run` on the whole study
  (no --shard, so pods wait for each other through the shared directory instead of exiting),
  one run at a time (--jobs 1), with as many completions as pods, restarts on failure and a
  deadline that bounds the waiting;
- the SLURM script runs the same command with the same flags.

    python3 scripts/deploy-check.py
"""

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "deploy/kubernetes/study-job.yaml"
SBATCH = ROOT / "deploy/slurm/study.sbatch"


def ensure(module, package):
    try:
        __import__(module)
    except ImportError:
        print(f"deploy-check: installing {package} from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)


def main():
    ensure("kubernetes_validate", "kubernetes-validate")
    ensure("yaml", "pyyaml")
    import yaml

    schema = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(JOB)],
        capture_output=True,
        text=True,
    )
    if schema.returncode != 0:
        sys.exit(f"deploy-check: {JOB.name} is not a valid Job:\n{schema.stdout}{schema.stderr}")
    print(f"deploy-check: {JOB.relative_to(ROOT)} is a valid batch/v1 Job (kubernetes-validate --strict)")

    job = yaml.safe_load(JOB.read_text())
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert spec.get("completionMode", "NonIndexed") == "NonIndexed", "pods must not be shards"
    assert spec["completions"] == spec["parallelism"], "every pod works until the study ends"
    assert spec.get("activeDeadlineSeconds"), "a deadline bounds the waiting"
    assert pod["restartPolicy"] == "OnFailure", "a failed pod restarts and resumes"
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:3] == ["lenet", "study", "run"], command
    assert "--shard" not in command, "a shard would exit instead of waiting"

    lines = [l for l in SBATCH.read_text().splitlines() if l.startswith("exec lenet study run")]
    assert len(lines) == 1, "the SLURM script runs lenet study run once"
    sbatch = shlex.split(lines[0])[1:]
    assert "--shard" not in sbatch, "a shard would exit instead of waiting"
    flags = lambda args: [a for a in args if a.startswith("--")]  # noqa: E731
    assert flags(command) == flags(sbatch), (flags(command), flags(sbatch))
    assert command[command.index("--jobs") + 1] == "1"
    assert "#SBATCH --requeue" in SBATCH.read_text()
    print(f"deploy-check: the Job and {SBATCH.relative_to(ROOT)} run lenet study run with the same "
          f"flags ({' '.join(flags(command))}), no --shard: pods and tasks wait for each other")


if __name__ == "__main__":
    main()
