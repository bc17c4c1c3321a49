"""FPGA parts the HLS backend knows, with their resource counts (vendor product tables / data sheets): a full part
name (e.g. xczu7ev-ffvc1156-2-e) is matched by its device prefix, and its speed grade is read from the name. DSP
counts bound a fully unrolled design; the estimator reports utilization against all of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from accelgen.errors import OptionError


@dataclass(frozen=True)
class Part:
    name: str
    family: str
    dsp: int
    lut: int
    ff: int
    bram_36k: int
    uram: int = 0
    speed_grade: int = 2  # -1 slowest ... -3 fastest (Versal/Alveo "-2" class parts are taken as 2)

    @property
    def bram18(self) -> int:
        return 2 * self.bram_36k


# device -> (family, DSP slices, CLB LUTs, CLB flip-flops, 36 Kb block RAMs, UltraRAMs), with the default full name
# used when only the device is given. Alveo cards list the resources of their FPGA (U200 = VU9P, U250 = VU13P).
_DEVICES = {
    "xcvu9p": ("flga2104-2-e", "Virtex UltraScale+", 6840, 1182240, 2364480, 2160, 960),
    "xcvu13p": ("flga2577-2-e", "Virtex UltraScale+", 12288, 1728000, 3456000, 2688, 1280),
    "xcu50": ("fsvh2104-2-e", "Alveo U50", 5952, 871680, 1743360, 1344, 640),
    "xcu200": ("fsgd2104-2-e", "Alveo U200", 6840, 1182240, 2364480, 2160, 960),
    "xcu250": ("figd2104-2l-e", "Alveo U250", 12288, 1728000, 3456000, 2688, 1280),
    "xcu280": ("fsvh2892-2l-e", "Alveo U280", 9024, 1303680, 2607360, 2016, 960),
    "xczu3eg": ("sbva484-1-e", "Zynq UltraScale+", 360, 70560, 141120, 216, 0),
    "xczu7ev": ("ffvc1156-2-e", "Zynq UltraScale+", 1728, 230400, 460800, 312, 96),
    "xczu9eg": ("ffvb1156-2-e", "Zynq UltraScale+", 2520, 274080, 548160, 912, 0),
    "xc7z020": ("clg400-1", "Zynq-7000", 220, 53200, 106400, 140, 0),
    "xcku115": ("flvb2104-2-i", "Kintex UltraScale", 5520, 663360, 1326720, 2160, 0),
    "xc7a100t": ("csg324-1", "Artix-7", 240, 63400, 126800, 135, 0),
    "xcvc1902": ("vsva2197-2mp-e-s", "Versal AI Core", 1968, 899840, 1799680, 967, 463),
}


def _device_of(name: str) -> str | None:
    for device in sorted(_DEVICES, key=len, reverse=True):  # longest first: xcu250 before xcu25...
        if name.startswith(device):
            return device
    return None


def _speed_grade(rest: str) -> int:
    found = re.search(r"-(\d)[a-z]*(?:-|$)", rest)
    return int(found.group(1)) if found else 2


def find_part(name: str) -> Part:
    """The Part for a full part name (xczu7ev-ffvc1156-2-e), a package-less one (xc7z020clg400-1) or a device."""
    text = str(name).strip().lower()
    device = _device_of(text)
    if device is None:
        raise OptionError(f"unknown FPGA part {name!r}; known devices: {', '.join(_DEVICES)}")
    default, family, dsp, lut, ff, bram, uram = _DEVICES[device]
    rest = text[len(device):].lstrip("-")
    sep = "" if device.startswith("xc7") else "-"  # 7-series names run the package on: xc7z020clg400-1
    full = text if rest else f"{device}{sep}{default}"
    return Part(full, family, dsp, lut, ff, bram, uram, _speed_grade(full[len(device):]))


PARTS = {find_part(device).name: find_part(device) for device in _DEVICES}
