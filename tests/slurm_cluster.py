"""A single-node SLURM cluster on localhost for the cluster tests (munged + slurmctld + slurmd).

Everything lives in one temporary folder: the munge key and socket, a generated ``slurm.conf`` (this
machine's cores and memory as ``slurmd -C`` detects them), state, spool and logs. Clients find it through
``SLURM_CONF`` in the environment :meth:`SlurmCluster.env` returns.

Chosen so that it runs in a container without cgroups: processes are tracked through /proc
(``proctrack/linuxproc``, ``task/none``), and memory limits are enforced by the accounting poller
(``jobacct_gather/linux`` with ``OverMemoryKill``, every second), which kills a step whose resident memory
exceeds what the job asked for. There is no accounting database (``sacct`` fails), so finished jobs
stay visible to ``squeue --states=all`` for an hour (``MinJobAge``); the Snakemake executor plugin is
pointed at squeue with ``--slurm-status-command squeue``. The node offers two fake GPUs (``Gres=gpu:2``,
plain files standing in for device files) so that a job asking for ``--gres=gpu:2`` is scheduled on this
GPU-less machine. While it runs, ``/etc/slurm/slurm.conf`` links to the generated file (see SYSTEM_CONF).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Debian's packages that provide the daemons and clients (.ci/run installs them when missing).
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
PARTITION = "cpu"  # the default partition of workflow/profiles/slurm, so the shipped profile is used as-is
FAKE_GPUS = 2


# Where clients look when SLURM_CONF is unset. The executor's job step runs `srun` with every SLURM_*
# variable but the job's identity removed (SLURM_CONF included), so inside a job only this path leads
# srun to the cluster: the fixture links it to the generated file while the cluster runs.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class ClusterUnavailable(RuntimeError):
    """This machine cannot host the test cluster (the message says why); the tests skip."""


# The memory each job asks for under the shipped profile (default-resources: mem_mb).
PROFILE_MEM_MB = 8000


def _which(name: str) -> str | None:
    """``name`` on PATH or in the sbin folders (where Debian puts the daemons, often not on a user's PATH)."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")


def missing_programs() -> list[str]:
    """Names of the SLURM/munge programs not installed here."""
    return [name for name in (*DAEMONS, *CLIENTS) if _which(name) is None]


def _program(name: str) -> str:
    return _which(name) or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def detected_node() -> dict[str, str]:
    """This machine's node line as ``slurmd -C`` prints it: {"CPUs": "2", "RealMemory": "24105", ...}."""
    out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=60).stdout
    first = out.splitlines()[0]
    return dict(item.split("=", 1) for item in first.split() if "=" in item)


@dataclass
class SlurmCluster:
    """A running single-node cluster; :meth:`start` brings it up, :meth:`stop` tears it down."""

    root: Path
    node: str = "localhost"
    conf: Path = field(init=False)
    cpus: int = field(init=False, default=0)
    memory_mb: int = field(init=False, default=0)
    ctld_port: int = field(init=False, default=0)
    _linked: bool = field(init=False, default=False)
    _procs: dict[str, subprocess.Popen] = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)
        self.conf = self.root / "etc" / "slurm.conf"

    # ------------------------------------------------------------------ configuration
    def write_config(self) -> None:
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        for sub in ("etc", "munge", "state", "spool", "log", "run", "dev"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            (self.root / sub).chmod(0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        hw = detected_node()
        self.cpus, self.memory_mb = int(hw["CPUs"]), int(hw["RealMemory"])
        if self.memory_mb < PROFILE_MEM_MB:
            raise ClusterUnavailable(f"this machine has {self.memory_mb} MB; the shipped SLURM profile asks "
                                     f"{PROFILE_MEM_MB} MB per job, more than a node here could offer")
        topology = " ".join(f"{k}={hw[k]}" for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                                                       "ThreadsPerCore") if k in hw)
        controller = socket.gethostname().split(".")[0]  # slurmctld only runs on the host slurm.conf names
        r = self.root
        self.ctld_port = _free_port()
        self.conf.write_text(f"""\
# Generated by tests/slurm_cluster.py for one test session.
ClusterName=jointwsss-test
SlurmctldHost={controller}(127.0.0.1)
SlurmUser={user}
SlurmdUser={user}
SlurmctldPort={self.ctld_port}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / 'run' / 'munge.socket'}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}
SlurmdPidFile={r / 'run' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
MpiDefault=none
MailProg=/bin/true
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 {topology} RealMemory={self.memory_mb} Gres=gpu:{FAKE_GPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        # slurmd drops GPUs without device files; plain files stand in for /dev/nvidia0..1 (task/none
        # never fences devices, so nothing opens them).
        for i in range(FAKE_GPUS):
            (self.root / "dev" / f"fakegpu{i}").touch()
        (self.conf.parent / "gres.conf").write_text(
            f"NodeName={self.node} Name=gpu File={self.root / 'dev'}/fakegpu[0-{FAKE_GPUS - 1}]\n")

    def env(self, base: dict | None = None) -> dict:
        """Environment for SLURM clients (and Snakemake) that talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 60) -> "SlurmCluster":
        self.write_config()
        self._link_system_config()
        r = self.root
        self._spawn("munged", [_program("munged"), "--foreground", "--force", f"--socket={r / 'run' / 'munge.socket'}",
                               f"--key-file={r / 'munge' / 'munge.key'}", f"--pid-file={r / 'run' / 'munged.pid'}",
                               f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munge' / 'seed'}"])
        self._wait_for(lambda: (r / "run" / "munge.socket").exists(), "munged's socket", timeout_s)
        self._spawn("slurmctld", [_program("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait_for(lambda: self.scontrol("ping").returncode == 0 and "UP" in self.scontrol("ping").stdout,
                       "slurmctld to answer ping", timeout_s)
        self._spawn("slurmd", [_program("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait_for(lambda: self.node_state().startswith("idle"), f"node {self.node} to become idle", timeout_s)
        return self

    def _link_system_config(self) -> None:
        if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
            SYSTEM_CONF.unlink()          # left by a test session that was killed
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise ClusterUnavailable(f"{SYSTEM_CONF} exists (a SLURM installation or another test session's "
                                     "cluster); the test cluster needs that path for `srun` inside its jobs")
        try:
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
        except PermissionError as err:
            raise ClusterUnavailable(f"cannot link {SYSTEM_CONF} to the test cluster's config ({err}); run as root") from err
        self._linked = True

    def _spawn(self, name: str, args: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.stdout", "w")
        self._procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                             start_new_session=True)

    def _wait_for(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{self.logs()}")

    def stop(self) -> None:
        """Cancel what is still queued, then stop slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            subprocess.run([_program("scancel"), "--full", "--partition", PARTITION], env=self.env(),
                           capture_output=True, timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._linked and SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == self.conf.resolve():
            SYSTEM_CONF.unlink()
        self._linked = False

    def logs(self) -> str:
        """The daemons' logs (tails), for failure messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)

    # ------------------------------------------------------------------ queries
    def scontrol(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([_program("scontrol"), *args], capture_output=True, text=True, env=self.env(), timeout=30)

    def node_state(self) -> str:
        proc = subprocess.run([_program("sinfo"), "-h", "-N", "-n", self.node, "-o", "%T"], capture_output=True,
                              text=True, env=self.env(), timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still knows (finished ones included, see MinJobAge), oldest first:
        {"id", "name", "state", "comment", "reason"}."""
        proc = subprocess.run([_program("squeue"), "--states=all", "--noheader", "--sort=i",
                               "--format=%i|%j|%T|%k|%r"], capture_output=True, text=True, env=self.env(), timeout=30,
                              check=True)
        rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
        return [dict(zip(("id", "name", "state", "comment", "reason"), row)) for row in rows]

    def job_details(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as {key: value} (the requested resources: NumCPUs, MinMemoryNode, TresPerNode...)."""
        out = self.scontrol("show", "job", "-o", job_id).stdout
        return dict(re.findall(r"(\w[\w:/]*)=(\S*)", out))
