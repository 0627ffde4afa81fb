#!/usr/bin/env bash
# The cluster path, tested on a real SLURM: a one-node cluster on this machine runs the
# shipped deploy/slurm/study.sbatch (not a copy) as an array of 3 tasks over one shared
# directory, for a tuned study with adaptive seeds on the committed MNIST subset
# (tests/fixtures/slurm/study.toml). While runs train, one task is cancelled (scancel) and
# another requeued (scontrol requeue). Then it checks that every task ended, that no run was
# trained by two processes at once (a replay of the study's claims.log), that the summary
# and report were written once, and that the summary equals the one `lenet study run`
# writes on one machine (timings aside).
#
#   bash scripts/slurm-test.sh        # as root (or with sudo): installs slurm-wlm and munge
#
# The daemons (munged, slurmctld, slurmd) run from a temporary directory with their own
# sockets, ports, state and logs, and are stopped at the end, also when the test fails.
# Needs: Debian's slurm-wlm and munge (installed when missing), ProctrackType
# proctrack/linuxproc and no cgroups, so it runs in containers and VMs alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "slurm-test: $*"; }
fail() {
    say "FAILED: $*"
    exit 1
}

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    say "installing Debian's slurm-wlm and munge"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq slurm-wlm munge >/dev/null
fi
[ -x target/release/lenet ] || cargo build --release
export PATH="$ROOT/target/release:$PATH"

D=$(mktemp -d /tmp/lenet-slurm.XXXXXX)
chmod 755 "$D"
mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/logs"
HOST=$(hostname -s)
stop() {
    # Daemons first (their PID files), then anything left of the array's tasks.
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -s "$pid" ] && $sudo kill "$(cat "$pid")" 2>/dev/null || true
    done
    sleep 1
    pkill -f "lenet study run $ROOT/tests/fixtures/slurm/study.toml" 2>/dev/null || true
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D"; else say "kept $D"; fi
}
trap stop EXIT

# munge: a key of its own and a socket in the temporary directory.
$sudo mungekey --create --keyfile="$D/munge/munge.key" --force >/dev/null 2>&1 ||
    $sudo dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
$sudo chmod 600 "$D/munge/munge.key"
$sudo munged --force --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
    --seed-file="$D/munge/munged.seed"

# The node's CPUs and memory as slurmd sees them.
# Addressed as 127.0.0.1, so the test needs no name service for this host.
NODE=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST NodeAddr=127.0.0.1/")
export SLURM_CONF="$D/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=lenet-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/logs/slurmctld.log
SlurmdLogFile=$D/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=3600
$NODE State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
$sudo slurmctld -f "$SLURM_CONF"
$sudo slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo -h -o %T | grep -qx idle || fail "the node did not come up: $(sinfo 2>&1)"
say "one-node cluster up: $(sinfo -h -o '%P %D %c CPUs %m MB %T')"

STUDY="$ROOT/tests/fixtures/slurm/study.toml"
OUT="$D/study"
export STUDY OUT LENET_DATA="$ROOT/tests/fixtures/mnist-subset"
START=$(date +%s)
JOB=$(sbatch --parsable --array=1-3 --cpus-per-task=1 --chdir="$ROOT" \
    --output="$D/logs/task-%A_%a.out" deploy/slurm/study.sbatch)
say "submitted deploy/slurm/study.sbatch as job $JOB, array 1-3"

state() {
    (scontrol show job "${JOB}_$1" 2>/dev/null || true) |
        sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1
}
# Cancel one task and requeue another while runs are training.
for _ in $(seq 300); do
    started=$( (ls "$OUT/runs" 2>/dev/null || true) | wc -l)
    [ "$(state 2)" = RUNNING ] && [ "$(state 1)" = RUNNING ] && [ "$started" -ge 3 ] && break
    sleep 1
done
[ "$(state 2)" = RUNNING ] || fail "task 2 never ran: $(squeue 2>&1)"
scancel "${JOB}_2"
say "cancelled task ${JOB}_2 (scancel) with $(ls "$OUT/runs" | wc -l) runs started"
sleep 1
scontrol requeue "${JOB}_1"
say "requeued task ${JOB}_1 (scontrol requeue); SLURM starts it again after its requeue delay"

# Every task ends: cancelled, or completed.
for _ in $(seq 900); do
    left=$( (squeue -h -j "$JOB" 2>/dev/null || true) | wc -l)
    [ "$left" = 0 ] && break
    sleep 2
done
[ "$left" = 0 ] || fail "tasks still queued or running after 30 minutes: $(squeue 2>&1)"
WALL=$(($(date +%s) - START))
for task in 1 2 3; do
    say "task ${JOB}_$task ended $(state $task) (restarts: $(scontrol show job "${JOB}_$task" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'))"
done
[ "$(state 2)" = CANCELLED ] || fail "task 2 ended $(state 2), not CANCELLED"
for task in 1 3; do
    [ "$(state $task)" = COMPLETED ] || {
        cat "$D"/logs/task-*"_$task.out" >&2 || true
        fail "task $task ended $(state $task), not COMPLETED"
    }
done
say "the 3-task study took $WALL s from submission to the last task's end"

# No run trained twice at once: replay the claims.log.
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
holder, trained, lines = {}, {}, 0
for line in open(os.path.join(out, "claims.log")):
    lines += 1
    stamp, event, run, _, *who = line.split()
    who = " ".join(who)
    if event == "claim":
        assert run not in holder, f"{line}: {run} is held by {holder.get(run)}"
        holder[run] = who
    elif event == "takeover":
        owner, _, previous = who.partition(" from ")
        previous = previous.removesuffix(" (gone)")
        assert holder.get(run) == previous, f"{line}: held by {holder.get(run)}, not {previous}"
        holder[run] = owner
    elif event == "release":
        assert holder.get(run) == who, f"{line}: held by {holder.get(run)}, not {who}"
        del holder[run]
    else:
        raise AssertionError(f"unknown event: {line}")
    if event != "release" and run != "summary":
        trained.setdefault(run, set()).add(holder[run])
runs = sorted(os.listdir(os.path.join(out, "runs")))
assert all(os.path.exists(os.path.join(out, "runs", r, "summary.json")) for r in runs)
assert not holder, f"claims never released: {holder}"
assert set(runs) <= set(trained), f"runs without a claim: {set(runs) - set(trained)}"
twice = {r: sorted(w) for r, w in trained.items() if len(w) > 1}
print(f"slurm-test: claims.log replayed: {lines} events, {len(runs)} runs, each held by one "
      f"process at a time; {len(twice)} runs passed from one process to another "
      f"(a cancelled or requeued task's): {twice}")
PY

# The summary and report written once, by one task.
writers=$(grep -l "wrote summary.md" "$D"/logs/task-*.out | wc -l)
[ "$writers" = 1 ] || fail "$writers tasks wrote the summary"
[ -s "$OUT/report.html" ] || fail "no report.html"
say "summary and report written once: $(grep -l 'wrote summary.md' "$D"/logs/task-*.out | xargs -n1 basename)"

# The same array again into a fresh directory, left alone: its wall time.
START=$(date +%s)
JOB2=$(OUT="$D/plain" sbatch --parsable --array=1-3 --cpus-per-task=1 --chdir="$ROOT" \
    --output="$D/logs/plain-%A_%a.out" deploy/slurm/study.sbatch)
for _ in $(seq 900); do
    left=$( (squeue -h -j "$JOB2" 2>/dev/null || true) | wc -l)
    [ "$left" = 0 ] && break
    sleep 1
done
PLAIN_WALL=$(($(date +%s) - START))
say "job $JOB2, the same array left alone: $PLAIN_WALL s"

# The same study on one machine: the same summary, timings aside.
ONE_START=$(date +%s)
lenet study run "$STUDY" --out "$D/one" -q >/dev/null
ONE_WALL=$(($(date +%s) - ONE_START))
python3 - "$OUT/summary.json" "$D/one/summary.json" "$D/plain/summary.json" <<'PY'
import json, sys
def untimed(path):
    s = json.load(open(path))
    for c in s["configs"]:
        c.pop("wall_seconds", None)
        for t in c.get("targets", []):
            t.pop("seconds", None)
    return s
cluster, one, plain = (untimed(p) for p in sys.argv[1:])
assert cluster == one, "the cluster's summary differs from the one-machine summary"
assert plain == one, "the undisturbed array's summary differs from the one-machine summary"
print("slurm-test: both arrays' summaries equal the one-machine summary (timings aside)")
PY
say "wall time: one process on this machine $ONE_WALL s; the 3-task array $PLAIN_WALL s left alone, $WALL s with a task cancelled and one requeued (its requeue delay included)"
say "passed"
