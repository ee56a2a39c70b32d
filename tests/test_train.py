import psutil
import pytest
import torch

from kslottery.data.corpus import SentencePair
from kslottery.model.surgery import prepare_embed
from kslottery.model.loading import load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams, TrainSettings
from kslottery.data.prompts import encode_pairs
from kslottery.training.checkpoint import Checkpoint
from kslottery.training.loop import LengthGroupedBatches, TrainingError, train
from conftest import small_section, tiny_pairs


def test_length_grouped_batches_cover_every_example_once_per_pass():
    lengths = [(i * 37) % 101 + 5 for i in range(203)]
    sampler = LengthGroupedBatches(lengths, batch_size=4, seed=0, window=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50 and all(len(b) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat)  # no repeats within a pass
    padded = sum(4 * max(lengths[i] for i in b) for b in batches)
    real = sum(lengths[i] for b in batches for i in b)
    assert padded < 1.2 * real  # far less padding than random batches would carry
    assert list(LengthGroupedBatches(lengths, 4, seed=0, window=5)) == batches  # seeded
    assert list(LengthGroupedBatches(lengths, 4, seed=1, window=5)) != batches


@pytest.fixture
def tiny(tmp_path, tiny_model_dir):
    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, tmp_path / "base")
    model, tokenizer = load_saved(tmp_path / "base")
    pairs = [SentencePair(s, t) for s, t in tiny_pairs(16)]
    examples = encode_pairs(tokenizer, pairs, "en-ca", "{src} to {tgt}: {source}\n", 64)
    return model, tokenizer, examples


def test_training_lowers_the_loss_and_is_deterministic(tiny):
    model, tokenizer, examples = tiny
    params = TrainSettings(lr=0.05, steps=12, batch_size=4, max_length=64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = train(prepare_embed(model), examples, params, tokenizer.pad_token_id)
    assert len(first.losses) == 12
    assert sum(first.losses[-3:]) < sum(first.losses[:3])
    model.load_state_dict(state)
    again = train(prepare_embed(model), examples, params, tokenizer.pad_token_id)
    assert again.losses == first.losses


def test_a_run_stopped_early_takes_the_full_runs_first_steps(tiny):
    """--stop-after (tools/rederive.py): the first steps on the full run's schedule, not a shorter run."""
    model, tokenizer, examples = tiny
    params = TrainSettings(lr=0.05, steps=12, batch_size=4, max_length=64, schedule="cosine", warmup=0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    full = train(prepare_embed(model), examples, params, tokenizer.pad_token_id)
    model.load_state_dict(state)
    stopped = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, stop_after=3)
    assert stopped.losses == full.losses[:3] and stopped.lrs == full.lrs[:3]
    model.load_state_dict(state)
    shorter = train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=3, batch_size=4, max_length=64,
                                                                  schedule="cosine", warmup=0.25), tokenizer.pad_token_id)
    assert shorter.lrs != full.lrs[:3]  # (why a shorter run would not do: the schedule follows the steps)


def test_training_measures_what_it_costs(tiny):
    """Time per step, the gradients and AdamW's two moments of the trainable rows, peak memory: measured,
    and kept out of the deterministic metrics."""
    model, tokenizer, examples = tiny
    held_before = psutil.Process().memory_info().rss
    result = train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=4, batch_size=4, max_length=64),
                   tokenizer.pad_token_id)
    cost = result.cost()
    embedding = model.get_input_embeddings().weight
    assert cost.steps_timed == 4 and 0 < cost.seconds_per_step < result.seconds
    assert cost.gradient_bytes == embedding.numel() * embedding.element_size()
    assert 2 * cost.gradient_bytes <= cost.optimizer_state_bytes <= 2 * cost.gradient_bytes + 64  # + step counts
    # the peak is about what the process held before, or more, and in bytes (not KiB, not KiB * 1024
    # twice); the kernel's high-water mark may lag the live count by a few pages
    assert 0.95 * held_before <= cost.peak_memory_bytes < 2**36 and cost.memory_kind == "rss"
    assert cost.machine.endswith(f"; torch {torch.__version__}")  # and the CPU's vector instructions:
    assert torch.backends.cpu.get_cpu_capability() in cost.machine  # what decides the order of sums
    assert not {"seconds_per_step", "peak_memory_bytes", "machine"} & set(result.metrics())


def test_nothing_trainable_is_an_error(tiny):
    model, tokenizer, examples = tiny
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(TrainingError, match="nothing to train"):
        train(model, examples, TrainSettings(lr=0.1, steps=1, batch_size=2), tokenizer.pad_token_id)


def test_diverging_loss_stops_with_the_step(tiny):
    model, tokenizer, examples = tiny
    model = prepare_embed(model)
    with torch.no_grad():
        model.get_input_embeddings().weight.fill_(float("nan"))  # what a diverged run looks like
    with pytest.raises(TrainingError, match="loss is nan at step 0"):
        train(model, examples, TrainSettings(lr=0.1, steps=6, batch_size=4), tokenizer.pad_token_id)


def test_resume_from_a_checkpoint_gives_the_uninterrupted_run(tiny, tmp_path, caplog):
    model, tokenizer, examples = tiny
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    params = TrainSettings(lr=0.05, steps=7, batch_size=4, max_length=64)
    checkpoint = Checkpoint(tmp_path / "run.pt", every=3)
    straight = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=1, checkpoint=checkpoint)
    after = model.get_input_embeddings().weight.detach().clone()
    # A finished run leaves its last checkpoint (step 6) for its caller to discard; a rerun from the
    # initial weights resumes there and redoes only step 7.
    assert torch.load(checkpoint.path, weights_only=True)["step"] == 6
    model.load_state_dict(initial)
    with caplog.at_level("INFO", logger="kslottery.training.checkpoint"):
        resumed = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=1, checkpoint=checkpoint)
    assert "resuming from" in caplog.text and "at step 6" in caplog.text
    assert resumed.losses == straight.losses
    assert torch.equal(model.get_input_embeddings().weight, after)


def test_a_checkpoint_of_another_run_is_ignored(tiny, tmp_path, caplog):
    model, tokenizer, examples = tiny
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = Checkpoint(tmp_path / "run.pt", every=2)
    params = TrainSettings(lr=0.05, steps=5, batch_size=4)
    for changed in ("lr", "weights"):
        model.load_state_dict(initial)
        train(prepare_embed(model), examples, params, tokenizer.pad_token_id, checkpoint=checkpoint)  # leaves step 4
        model.load_state_dict(initial)
        rerun = params
        if changed == "lr":
            rerun = TrainSettings(lr=0.01, steps=5, batch_size=4)
        else:  # same settings, another starting model (e.g. a new model.source)
            with torch.no_grad():
                model.get_input_embeddings().weight[0] += 1
        caplog.clear()
        with caplog.at_level("INFO", logger="kslottery.training.checkpoint"):
            result = train(prepare_embed(model), examples, rerun, tokenizer.pad_token_id, checkpoint=checkpoint)
        assert "belongs to another run" in caplog.text and "resuming" not in caplog.text, changed
        assert len(result.losses) == 5


def test_checkpoint_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="must be >= 1"):
        Checkpoint(tmp_path / "x.pt", every=0)


@pytest.mark.parametrize("method", ["plain", "lora", "prefix"])
def test_target_loss_is_the_causal_lm_loss_with_fewer_logits(tiny, method):
    """The loss over the label positions only equals transformers' loss over the whole (B, T, V)
    logits, through peft wrappers too, and its gradient is the same."""
    from functools import partial

    from kslottery.model.surgery import prepare
    from kslottery.data.prompts import collate
    from kslottery.training.loop import target_loss

    model, tokenizer, examples = tiny
    if method == "plain":
        model = prepare_embed(model)
    else:
        section = small_section(method, lr=1)
        model = prepare(method, model, section)
    batch = partial(collate, pad_token_id=tokenizer.pad_token_id)(examples[:5])
    assert (batch["labels"] == -100).float().mean() > 0.3  # a real prompt share, or the test proves little
    trainable = [p for p in model.parameters() if p.requires_grad]
    reference = model(**batch).loss
    reference_grads = torch.autograd.grad(reference, trainable)
    ours = target_loss(model, batch)
    grads = torch.autograd.grad(ours, trainable)
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, reference_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-7)


def test_a_batch_without_targets_is_an_error(tiny):
    from kslottery.training.loop import target_loss

    model, tokenizer, examples = tiny
    input_ids = torch.tensor([examples[0].input_ids])
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
             "labels": torch.full_like(input_ids, -100)}
    with pytest.raises(TrainingError, match="no target token"):
        target_loss(model, batch)


def test_dev_evaluation_after_every_epoch_and_the_last_step_leaves_training_as_it_was(tiny, tmp_path):
    model, tokenizer, examples = tiny  # 16 examples in batches of 4: an epoch is 4 steps
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    params = TrainSettings(lr=0.05, steps=10, batch_size=4, max_length=64)
    plain = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=2)
    plain_weights = model.get_input_embeddings().weight.detach().clone()

    seen = []

    def evaluate(evaluated):
        seen.append((evaluated.training, torch.is_grad_enabled()))
        return {"norm": round(evaluated.get_input_embeddings().weight.norm().item(), 6)}

    model.load_state_dict(initial)
    checkpoint = Checkpoint(tmp_path / "run.pt", every=5)
    result = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=2, evaluate=evaluate,
                   checkpoint=checkpoint)
    assert [(row["epoch"], row["step"]) for row in result.dev] == [(1.0, 4), (2.0, 8), (2.5, 10)]
    assert seen == [(False, False)] * 3  # eval mode, no autograd
    assert result.losses == plain.losses and torch.equal(model.get_input_embeddings().weight, plain_weights)
    assert result.dev[-1]["norm"] == round(plain_weights.norm().item(), 6)  # the last one scores the trained model
    assert result.dev[0]["norm"] != result.dev[-1]["norm"]
    assert result.metrics()["dev_norm"] == result.dev[-1]["norm"]
    assert result.dev_csv().splitlines() == ["epoch,step,norm"] + [f"{r['epoch']},{r['step']},{r['norm']}" for r in result.dev]

    # A rerun resumes from the last checkpoint, step 5 (step 10 ends the run and is not checkpointed):
    # step 4's score comes back from the checkpoint, steps 8 and 10 are evaluated again.
    model.load_state_dict(initial)
    seen.clear()
    resumed = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=2, evaluate=evaluate,
                    checkpoint=checkpoint)
    assert resumed.dev == result.dev and len(seen) == 2  # steps 8 and 10 evaluated again, step 4's score kept


def test_cosine_schedule_with_warmup_gives_transformers_lr_per_step_and_resumes(tiny, tmp_path):
    from transformers import get_cosine_schedule_with_warmup

    model, tokenizer, examples = tiny
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    params = TrainSettings(lr=0.05, steps=8, batch_size=4, max_length=64, schedule="cosine", warmup=0.25)
    straight = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=3)
    reference = get_cosine_schedule_with_warmup(torch.optim.SGD([torch.zeros(1)], lr=0.05), num_warmup_steps=2,
                                                num_training_steps=8)
    expected = []
    for _ in range(8):
        expected.append(reference.get_last_lr()[0])
        reference.optimizer.step()
        reference.step()
    assert straight.lrs == expected and straight.lrs[0] == 0.0 and max(straight.lrs) == 0.05
    constant = train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=3, batch_size=4), tokenizer.pad_token_id)
    assert constant.lrs == [0.05] * 3

    # A run killed after step 4 resumes with the schedule where it was: same losses, same weights.
    model.load_state_dict(initial)
    after = None
    checkpoint = Checkpoint(tmp_path / "run.pt", every=4)
    train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=3, checkpoint=checkpoint)
    after = model.get_input_embeddings().weight.detach().clone()
    state = torch.load(checkpoint.path, weights_only=True)
    assert state["step"] == 4
    model.load_state_dict(initial)
    resumed = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=3, checkpoint=checkpoint)
    assert resumed.losses == straight.losses and resumed.lrs == straight.lrs[4:]
    assert torch.equal(model.get_input_embeddings().weight, after)


def _scripted(scores: list[float], weights: list[torch.Tensor]):
    """An evaluate function that returns the next of `scores` and records the weights it scored."""
    calls = iter(scores)

    def evaluate(model):
        weights.append(model.get_input_embeddings().weight.detach().clone())
        return {"chrf++": next(calls), "bleu": 0.0}

    return evaluate


def test_patience_stops_after_epochs_without_a_dev_gain_and_keeps_the_best_epochs_weights(tiny, tmp_path):
    model, tokenizer, examples = tiny  # an epoch is 4 steps
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    params = TrainSettings(lr=0.05, steps=40, batch_size=4, max_length=64, patience=2)
    scored = []
    result = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=4,
                   evaluate=_scripted([10.0, 12.0, 12.0, 11.0, 99.0], scored))
    # epoch 2 is the best (a tie is no gain); epochs 3 and 4 are two without a gain: stop after step 16
    assert [row["epoch"] for row in result.dev] == [1.0, 2.0, 3.0, 4.0] and len(result.losses) == 16
    assert torch.equal(model.get_input_embeddings().weight, scored[1]) and not torch.equal(scored[1], scored[3])
    metrics = result.metrics()
    assert (metrics["epochs"], metrics["kept_epoch"], metrics["dev_chrf++"], metrics["steps"]) == (4.0, 2.0, 12.0, 16)
    # the steps it ran are those of the run without patience: the schedule still spans `steps`
    model.load_state_dict(initial)
    plain = train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=40, batch_size=4, max_length=64),
                  tokenizer.pad_token_id, seed=4)
    assert plain.losses[:16] == result.losses and "kept_epoch" not in plain.metrics()

    # a run that keeps improving trains every step and keeps its last weights
    model.load_state_dict(initial)
    scored.clear()
    rising = train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=8, batch_size=4, max_length=64,
                                                                 patience=1),
                   tokenizer.pad_token_id, seed=4, evaluate=_scripted([1.0, 2.0], scored))
    assert len(rising.losses) == 8 and rising.metrics()["kept_epoch"] == 2.0
    assert torch.equal(model.get_input_embeddings().weight, scored[-1])


def test_an_early_stopped_run_resumed_from_a_checkpoint_keeps_the_same_epoch(tiny, tmp_path):
    model, tokenizer, examples = tiny
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    params = TrainSettings(lr=0.05, steps=40, batch_size=4, max_length=64, patience=2)
    scores = [10.0, 12.0, 11.0, 11.0]
    scored = []
    straight = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=5,
                     evaluate=_scripted(scores, scored))
    kept = model.get_input_embeddings().weight.detach().clone()
    # the same run, checkpointed at step 12 (after epoch 3: the best, epoch 2, is behind it)
    model.load_state_dict(initial)
    checkpoint = Checkpoint(tmp_path / "run.pt", every=12)
    train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=5, checkpoint=checkpoint,
          evaluate=_scripted(scores, []))
    assert torch.load(checkpoint.path, weights_only=True)["step"] == 12
    model.load_state_dict(initial)
    resumed = train(prepare_embed(model), examples, params, tokenizer.pad_token_id, seed=5, checkpoint=checkpoint,
                    evaluate=_scripted(scores[3:], []))  # only epoch 4 is evaluated again
    assert resumed.metrics() == straight.metrics() and resumed.dev == straight.dev
    assert torch.equal(model.get_input_embeddings().weight, kept)


def test_patience_without_dev_scores_is_refused_before_training(tiny):
    model, tokenizer, examples = tiny
    with pytest.raises(TrainingError, match="patience 3 stops on dev scores"):
        train(prepare_embed(model), examples, TrainSettings(lr=0.05, steps=4, batch_size=4, patience=3),
              tokenizer.pad_token_id)


def test_sgd_momentum_is_passed_to_the_optimizer(tiny):
    model, tokenizer, examples = tiny
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    runs = {}
    for momentum in (0.0, 0.9):
        model.load_state_dict(initial)
        runs[momentum] = train(prepare_embed(model), examples, TrainSettings(lr=0.5, steps=3, batch_size=4,
                                                                             optimizer="sgd", momentum=momentum),
                               tokenizer.pad_token_id).losses
    assert runs[0.0][:2] == runs[0.9][:2] and runs[0.0][2] != runs[0.9][2]  # momentum shows from the third step
