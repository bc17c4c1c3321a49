"""Where the Xilinx arbitrary-precision headers (ap_int.h, ap_fixed.h) live on this machine.

accelgen does not ship the headers: they come with the hls4ml package (`<hls4ml>/templates/vivado/ap_types`), which
is a dependency, with the `hls_stream.h` simulation model io stream projects need. Generated HLS projects and the
C++ test harnesses add this folder with `-I`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from accelgen.errors import AccelgenError

AP_TYPES_SUBDIR = ("templates", "vivado", "ap_types")
REQUIRED_HEADERS = ("ap_int.h", "ap_fixed.h", "hls_stream.h")  # hls_stream.h: the io stream C simulation


class ApTypesNotFoundError(AccelgenError):
    """The ap_types headers cannot be found: hls4ml is not installed, or its install lacks them."""


@lru_cache(maxsize=1)
def ap_types_dir() -> Path:
    """The folder holding ap_fixed.h / ap_int.h, found inside the installed hls4ml package.

    Looks the package up without importing it (importing hls4ml is slow and pulls in its own dependencies).
    Raises ApTypesNotFoundError, with what to do, if hls4ml is missing or the headers are not in it.
    """
    try:
        spec = importlib.util.find_spec("hls4ml")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ApTypesNotFoundError(
            "the Xilinx ap_types headers (ap_fixed.h) come from the hls4ml package, which is not installed; "
            "install it with `pip install hls4ml==1.3.0`")
    for location in locations:
        candidate = Path(location).joinpath(*AP_TYPES_SUBDIR)
        if all((candidate / h).is_file() for h in REQUIRED_HEADERS):
            return candidate.resolve()
    tried = ", ".join(str(Path(loc).joinpath(*AP_TYPES_SUBDIR)) for loc in locations)
    raise ApTypesNotFoundError(
        f"hls4ml is installed but its ap_types headers ({', '.join(REQUIRED_HEADERS)}) are missing from {tried}; "
        "reinstall it with `pip install --force-reinstall hls4ml==1.3.0`")
