"""Damaged or unexpected inputs that used to end in a traceback or be trusted: weights that are
not safetensors, a malformed Hugging Face folder, a pickle-only encoder, ``predict --out`` at a
file, a teacher with NaN weights, an unfinished store under inspect, a token-cache entry whose
arrays were replaced."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import GLUE_SAMPLE, TINY_RECIPE, CrashAt, write
from kdnlu.cli import main, train_main
from kdnlu.data import encode_examples
from kdnlu.errors import KdnluError
from kdnlu.hf import bundled_minilm_path
from kdnlu.recipe import load_recipe
from kdnlu.registry import ENCODERS, TASKS
from kdnlu.store import StoreSpec, StoreWriter
from kdnlu.teach import teach
from kdnlu.token_cache import TokenCache
from kdnlu.trained import load_trained
from kdnlu.trainer import train


@pytest.fixture
def stopped_run(tmp_path: Path) -> Path:
    """A run cut at step 2 of 4 with a checkpoint of step 1 (resumable) and a best."""
    overrides = ["train.checkpoint_every=1", "train.eval_every=1"]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    with pytest.raises(RuntimeError):
        train(recipe, progress=False, callbacks=[CrashAt(2)])
    return tmp_path / "runs" / "tiny_test"


@pytest.mark.parametrize("damage", ["truncated", "not safetensors"])
def test_weights_that_are_not_safetensors_are_named(
    stopped_run: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("best", "last"):
        path = stopped_run / "checkpoints" / name / "model.safetensors"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"PK\x03\x04junk")
    path = stopped_run / "checkpoints" / "last" / "model.safetensors"
    with pytest.raises(KdnluError) as err:
        load_trained(stopped_run, "last")
    assert str(err.value).startswith(
        f"{path} is not a readable safetensors file (truncated or replaced?): "
    )
    assert main(["export", str(stopped_run), str(stopped_run / "export")]) == 2
    assert "best/model.safetensors is not a readable safetensors file" in capsys.readouterr().err
    assert train_main(["--resume", str(stopped_run), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {path} is not a readable safetensors file (truncated or replaced?): "
    )


def test_predict_out_at_a_file_is_refused(
    stopped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = write(tmp_path / "taken.txt", "a file\n")
    assert main(["predict", str(stopped_run), "--split", "dev", "--out", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {target} is a file; give a folder (it is made if missing)\n"
    )


def hf_folder(tmp_path: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the bundled MiniLM folder (links to its files) with some files replaced."""
    folder = tmp_path / "encoder"
    folder.mkdir(parents=True)
    for source in bundled_minilm_path().iterdir():
        if source.is_file() and source.name not in replace:
            (folder / source.name).symlink_to(source)
    for name, data in replace.items():
        (folder / name).write_bytes(data)
    return folder


def build_hf(folder: Path, allow_pickle: bool = False) -> object:
    entry = ENCODERS.get("hf")
    return entry.build(entry.config(path=str(folder), allow_pickle=allow_pickle))


def test_a_malformed_hugging_face_folder_is_named(tmp_path: Path) -> None:
    folder = hf_folder(tmp_path, {"config.json": b'{"model_type": "bert", '})
    with pytest.raises(KdnluError) as err:
        build_hf(folder)
    assert str(err.value).startswith(
        f"encoder.path {folder}: cannot load this Hugging Face checkpoint (is its config.json "
        "valid JSON, are its weights complete?): "
    )
    weights = (bundled_minilm_path() / "model.safetensors").read_bytes()
    cut = hf_folder(tmp_path / "cut", {"model.safetensors": weights[: len(weights) // 3]})
    with pytest.raises(KdnluError) as err:
        build_hf(cut)
    assert str(err.value).startswith(f"encoder.path {cut}: cannot load this Hugging Face ")


class _Payload:
    def __reduce__(self):  # what an unpickled pytorch_model.bin would run
        return (os.system, (f"touch {Path.cwd() / 'PWNED'}",))


def test_a_pickle_only_encoder_is_refused_unless_allowed(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    folder = tmp_path / "pickled"
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    model = BertModel(config)
    model.save_pretrained(str(folder))
    (folder / "model.safetensors").unlink()  # the older format: a pickled state dict only
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    real = (folder / "pytorch_model.bin").read_bytes()
    torch.save(_Payload(), folder / "pytorch_model.bin")
    with pytest.raises(KdnluError) as err:
        build_hf(folder)
    assert str(err.value) == (
        f"encoder.path {folder} has no safetensors weights (pytorch_model.bin); kdnlu reads "
        "weights from safetensors only, since a pickle such as pytorch_model.bin can run code "
        "when loaded. Convert it to model.safetensors, or set encoder.allow_pickle: true if "
        "you trust where it came from"
    )
    assert not (tmp_path / "PWNED").exists()
    (folder / "pytorch_model.bin").write_bytes(real)
    encoder = build_hf(folder, allow_pickle=True)  # the user's choice: the pickle is read
    loaded, saved = encoder.model.state_dict(), model.state_dict()  # (no pooler: kdnlu's)
    assert loaded and all(torch.equal(v, saved[k]) for k, v in loaded.items())


def test_a_teacher_with_nan_weights_is_named(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    teacher = train(recipe, progress=False).run_dir
    path = teacher / "checkpoints" / "best" / "model.safetensors"
    weights = load_file(path)
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(path))
    with pytest.raises(KdnluError) as err:
        teach([teacher], tmp_path / "store", ["rte"], progress=False)
    assert str(err.value) == (
        f"teacher {teacher} ({teacher / 'checkpoints' / 'best'}) has NaN or infinite weights in "
        f"1 tensor(s), e.g. {name}; leave it out of the teachers, or retrain it"
    )
    assert not (tmp_path / "store").exists()


def test_inspect_of_an_unfinished_store_says_how_to_finish_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = StoreSpec("rte", "train", 10, 2, ("t1",), "f" * 64, shard_rows=4)
    StoreWriter(tmp_path / "out" / "rte" / "train", spec)  # interrupted before any shard
    assert main(["store", "inspect", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: unfinished: {tmp_path / 'out' / 'rte' / 'train'} (a write was interrupted); "
        "rerun the kdnlu-teach command that wrote it (same teachers, tasks and --out) to finish "
        "it\n"
    )


def test_a_token_cache_entry_whose_arrays_were_replaced_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = ENCODERS.get("tiny").build().tokenizer
    task = TASKS.get("rte").build(data_root=str(GLUE_SAMPLE))
    calls: list[int] = []

    def build():
        calls.append(1)
        return encode_examples("rte", tokenizer, task.read("train"), 64)

    cache, path = TokenCache(tmp_path), task.path("train")
    first = cache.get_or_build("rte", tokenizer, path, 64, {}, build)
    (entry,) = (tmp_path / "tokens").iterdir()
    labels = np.load(entry / "labels.npy")
    np.save(entry / "labels.npy", 1 - labels)  # the same size, other labels
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        again = cache.get_or_build("rte", tokenizer, path, 64, {}, build)
    assert calls == [1, 1]
    assert "labels.npy does not match its checksum in meta.json); rebuilding it" in caplog.text
    np.testing.assert_array_equal(again.labels, first.labels)
