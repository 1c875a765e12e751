"""What a real node could leave behind on the host, as comparable snapshots.

``make cluster-down`` must leave no process, mount, iptables rule, network link, network
namespace, cgroup or sysctl change behind. :func:`snapshot` records exactly those (for one
cluster state directory), so a test can compare the host before start and after stop.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

CGROUP_ROOT = "pynomaly-node"
# What the node sets while it runs (ip_forward) and what its kubelet sets on start.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
_COUNTERS = re.compile(r"\[\d+:\d+\]")


@dataclasses.dataclass(frozen=True)
class HostState:
    processes: frozenset[str]
    mounts: frozenset[str]
    iptables: tuple[str, ...]
    links: frozenset[str]
    netns: frozenset[str]
    cgroups: frozenset[str]
    sysctls: tuple[str, ...]

    def differences(self, later: HostState) -> dict[str, tuple[object, object]]:
        """Fields that differ between ``self`` (before) and ``later`` (after)."""
        out: dict[str, tuple[object, object]] = {}
        for field in dataclasses.fields(self):
            a, b = getattr(self, field.name), getattr(later, field.name)
            if a != b:
                if isinstance(a, frozenset) and isinstance(b, frozenset):
                    out[field.name] = (sorted(a - b), sorted(b - a))
                else:
                    out[field.name] = (a, b)
        return out


def _run(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30).stdout


def _iptables() -> tuple[str, ...]:
    lines: list[str] = []
    for tool in ("iptables-save", "ip6tables-save"):
        for line in _run(tool).splitlines():
            if line.startswith("#"):
                continue
            lines.append(f"{tool}: {_COUNTERS.sub('', line)}")
    return tuple(lines)


def snapshot(state_dir: Path) -> HostState:
    """The host's state as far as a real node in ``state_dir`` could change it."""
    marker = str(state_dir)
    processes = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            processes.add(f"{proc.name} {cmdline.strip()}")
    mounts = {
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if marker in line.split()[4] or "/netns/" in line.split()[4]
    }
    links = {
        line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link").splitlines()
    }
    netns = set(_run("ip", "netns", "list").split())
    cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}")}
    sysctls = tuple(f"{name}={(Path('/proc/sys') / name).read_text().strip()}" for name in SYSCTLS)
    return HostState(
        processes=frozenset(processes),
        mounts=frozenset(mounts),
        iptables=_iptables(),
        links=frozenset(links),
        netns=frozenset(netns),
        cgroups=frozenset(cgroups),
        sysctls=sysctls,
    )
