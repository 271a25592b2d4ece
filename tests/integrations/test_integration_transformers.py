"""Hugging Face Transformers: the ``TrainerCallback`` logs the training arguments and the model's
config, each ``on_log`` at the trainer's global step, and the final model (``save_pretrained``),
which loads back through the new ``transformers`` flavour (as ``cairn serve`` loads it) and gives
the trained model's logits. A tiny BERT built from a config: no hub download, no tokenizer (the
inputs are token ids). ``Trainer`` needs ``accelerate``: without it the Trainer tests skip and
the flavour is still tested on a model logged directly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integration_checks import model_versions, served_answers, steps_and_values

import cairn
from cairn.sdk.client import Client
from cairn.sdk.run import start_run

pytestmark = [pytest.mark.shared_stack,
              pytest.mark.skipif(importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
                                 reason="the Transformers integration needs transformers and torch: "
                                        "pip install transformers torch")]
# imported when the module's tests run (``frameworks``), not at collection: every xdist worker
# collects every module, and these cost each worker ~2 s
transformers: Any = None
torch: Any = None
CairnCallback: Any = None
PROJECT = "integ-transformers"
VOCAB, LENGTH = 30, 6


def tiny_bert() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=LENGTH, num_labels=2)
    return transformers.BertForSequenceClassification(config)


def dataset() -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(4)
    ids = torch.randint(0, VOCAB, (16, LENGTH), generator=gen)
    labels = (ids[:, 0] > VOCAB // 2).long()
    return [{"input_ids": i, "labels": label} for i, label in zip(ids, labels)]


def arguments(tmp_path: Path, steps: int) -> Any:
    return transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4,
                                          learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no",
                                          use_cpu=True, disable_tqdm=True)


def logits_of(model: Any, rows: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(rows)).logits.numpy()


@pytest.fixture(scope="module", autouse=True)
def frameworks() -> None:
    global transformers, torch, CairnCallback
    import torch as torch_module
    import transformers as transformers_module

    from cairn.integrations.transformers import CairnCallback as callback_class

    transformers, torch, CairnCallback = transformers_module, torch_module, callback_class


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


@pytest.fixture()
def accelerate() -> None:
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate: pip install accelerate")


def test_a_saved_model_loads_through_the_transformers_flavour(client: Client, tmp_path: Path) -> None:
    model, rows = tiny_bert(), np.random.default_rng(1).integers(0, VOCAB, (4, LENGTH))
    model.save_pretrained(tmp_path / "bert")
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        version = run.log_model(str(tmp_path / "bert"), "bert-direct", flavour="transformers", input_example=rows[:1])
    assert [c["type"] for c in client.load_model(PROJECT, f"bert-direct/{version['version']}",
                                                 cache_dir=tmp_path / "cache").signature] == ["long"] * LENGTH
    np.testing.assert_allclose(served_answers(client, PROJECT, "bert-direct", version, rows, tmp_path / "cache"),
                               logits_of(model, rows), rtol=1e-4, atol=1e-5)


def test_callback_logs_arguments_each_log_and_a_servable_model(client: Client, tmp_path: Path,
                                                                accelerate: None) -> None:
    model, rows = tiny_bert(), np.random.default_rng(0).integers(0, VOCAB, (3, LENGTH))
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        callback = CairnCallback(run, model_name="bert", input_example=rows[:1])
        transformers.Trainer(model=model, args=arguments(tmp_path, 4), train_dataset=dataset(),
                             callbacks=[callback]).train()
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["learning_rate"] == "0.001" and params["max_steps"] == "4"
    assert params["model.hidden_size"] == "16" and "output_dir" not in params
    steps, values = steps_and_values(client, PROJECT, run.id, "loss")
    assert steps == [1, 2, 3, 4] and np.isfinite(values).all()
    served = served_answers(client, PROJECT, "bert", callback.recorder.model_version, rows, tmp_path)
    np.testing.assert_allclose(served, logits_of(model, rows), rtol=1e-4, atol=1e-5)


def test_autolog_adds_the_callback_to_train(client: Client, tmp_path: Path, accelerate: None) -> None:
    model = tiny_bert()
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["transformers"], run=run)
        try:
            trainer = transformers.Trainer(model=model, args=arguments(tmp_path, 2), train_dataset=dataset())
            trainer.train()
        finally:
            cairn.autolog(["transformers"], disable=True)
    assert not any(isinstance(cb, CairnCallback) for cb in trainer.callback_handler.callbacks)  # removed after
    assert steps_and_values(client, PROJECT, run.id, "loss")[0] == [1, 2]
    [version] = model_versions(client, PROJECT, "transformers-model")
    rows = np.arange(LENGTH * 2).reshape(2, LENGTH) % VOCAB
    np.testing.assert_allclose(served_answers(client, PROJECT, "transformers-model", version, rows, tmp_path),
                               logits_of(model, rows), rtol=1e-4, atol=1e-5)
