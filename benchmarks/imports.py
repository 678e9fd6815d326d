"""The cost of ``import fastinit`` (which imports numpy but never torch)."""

import os


def timeraw_import_fastinit():
    """Seconds to import fastinit in a fresh interpreter that has imported numpy."""
    return "import fastinit", "import numpy"


def track_machine_cpus():
    """The CPUs the suite ran on: the "all" in every threads parameter."""
    return os.cpu_count()


track_machine_cpus.unit = "CPUs"
