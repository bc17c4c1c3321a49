"""FPGA parts the HLS backend knows, with their resource counts (from the vendors' product tables): the part
name is checked against this table, and DSP counts bound a fully unrolled design."""

from __future__ import annotations

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


PARTS = {p.name: p for p in (
    Part("xcvu13p-flga2577-2-e", "Virtex UltraScale+", 12288, 1728000, 3456000, 2688),
    Part("xcvu9p-flga2104-2-e", "Virtex UltraScale+", 6840, 1182240, 2364480, 2160),
    Part("xcu250-figd2104-2l-e", "Alveo U250", 12288, 1728000, 3456000, 2688),
    Part("xcku115-flvb2104-2-i", "Kintex UltraScale", 5520, 663360, 1326720, 2160),
    Part("xczu9eg-ffvb1156-2-e", "Zynq UltraScale+", 2520, 274080, 548160, 912),
    Part("xc7z020clg400-1", "Zynq-7000", 220, 53200, 106400, 140),
    Part("xc7a100tcsg324-1", "Artix-7", 240, 63400, 126800, 135),
)}


def find_part(name: str) -> Part:
    part = PARTS.get(str(name).lower())
    if part is None:
        raise OptionError(f"unknown FPGA part {name!r}; known parts: {', '.join(PARTS)}")
    return part
