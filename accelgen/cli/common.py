"""Helpers shared by the commands: shapes and data from the command line, safe output files."""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from accelgen.errors import OptionError

USER_ERROR = 2
_DIM = re.compile(r"\s*[0-9]+\s*")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`x=1x16` -> ("x", (1, 16)); `x=` (a scalar) -> ("x", ())."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise OptionError(f"--input-shape {text!r}: expected NAME=DxDx... e.g. x=1x16")
    parts = dims.replace(",", "x").split("x") if dims else []
    if not all(_DIM.fullmatch(d) for d in parts):
        raise OptionError(f"--input-shape {text!r}: dimensions must be non-negative integers, e.g. x=1x16")
    return name, tuple(int(d) for d in parts)


def input_shapes(args) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for text in args.input_shape or []:
        name, shape = parse_shape(text)
        if name in shapes:
            raise OptionError(f"--input-shape {text!r}: the shape of {name!r} is already given")
        shapes[name] = shape
    return shapes


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray] | np.ndarray:
    """The array of a .npy file or the arrays of a .npz archive. Never unpickles."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return data
        with data:
            arrays = {k: data[k] for k in data.files}
    except OSError as e:
        raise OptionError(f"{what}: cannot read {str(path)!r}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - numpy reports malformed files with assorted exceptions
        if "pickle" in str(e):
            raise OptionError(f"{what}: {str(path)!r} holds pickled Python objects, which accelgen never loads; save "
                              "plain arrays with np.save or np.savez") from None
        raise OptionError(f"{what}: {str(path)!r} is not a valid .npy/.npz file ({type(e).__name__}: {e})") from None
    bad = [k for k, a in arrays.items() if not isinstance(a, np.ndarray)]
    if bad:
        raise OptionError(f"{what}: {str(path)!r} holds {bad[0]!r}, which is not a .npy array")
    return arrays


def load_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    """`--input x=a.npy` binds one input (x=b.npz: the archive's array x); `--input data.npz` binds one input per
    array in the archive. A spec that is itself an existing file is a path, even if it contains '='."""
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if Path(spec).is_file():
            name, sep, file = "", "", spec
        what = f"--input {spec!r}"
        if sep and not name:
            raise OptionError(f"{what}: expected NAME=FILE.npy, NAME=FILE.npz or FILE.npz")
        path = Path(file)
        if path.is_dir():
            raise OptionError(f"{what}: {str(path)!r} is a folder, not a .npy/.npz file")
        if not path.is_file():
            raise OptionError(f"{what}: no such file {str(path)!r}")
        data = read_arrays(path, what)
        if isinstance(data, dict):
            if sep:
                if name not in data:
                    raise OptionError(f"{what}: the archive has no array {name!r} (it has {sorted(data)})")
                data = {name: data[name]}
        elif sep:
            data = {name: data}
        else:
            raise OptionError(f"{what}: a .npy file needs a name, e.g. --input x={spec}")
        for key, array in data.items():
            if key in arrays:
                raise OptionError(f"{what}: input {key!r} is already given by an earlier --input")
            arrays[key] = array
    return arrays


def output_path(text: str, force: bool) -> Path:
    """The --output file, checked before anything runs: its folder exists and is writable; it exists only with
    --force."""
    what = f"--output {text!r}"
    if not text:
        raise OptionError("--output needs a file name, e.g. --output out.npz")
    path = Path(text)
    if path.is_dir():
        raise OptionError(f"{what} is a folder; give a file name, e.g. {str(path / 'out.npz')!r}")
    if path.exists() and not force:
        raise OptionError(f"{what} exists; pass --force to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise OptionError(f"{what}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OptionError(f"{what}: permission denied")
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save `arrays` as an uncompressed .npz at exactly `path` (np.savez would add '.npz' to other names, and
    output names such as 'file' would clash with its parameters). Written to a temporary file first, so a failed
    write never leaves half a file or destroys the one --force replaces."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


