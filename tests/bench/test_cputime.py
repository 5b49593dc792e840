import subprocess
import sys
import time

from veil.bench.cputime import tree_cpu_seconds


def test_a_child_process_cpu_counts_for_its_parent() -> None:
    """A process that starts a child burning CPU is charged for it; a gone process is 0."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys; subprocess.run([sys.executable, '-c', "
         "'import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass\\n"
         "time.sleep(30)'])"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_seconds([parent.pid])[parent.pid] < 0.5:
            assert time.monotonic() < deadline, "the child's CPU time was never counted"
            time.sleep(0.1)
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
    assert tree_cpu_seconds([parent.pid]) == {parent.pid: 0.0}
