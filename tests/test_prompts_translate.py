import pytest
import torch

from kslottery.model.loading import load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams
from kslottery.data.prompts import IGNORE_INDEX, collate, encode_example, format_prompt
from kslottery.evaluation.translate import translate, translate_tokens
from conftest import small_section

TEMPLATE = "Translate this from {src} to {tgt}:\n{src}: {source}\n{tgt}:"


def test_prompt_names_languages():
    assert format_prompt(TEMPLATE, "en-ca", "Hi.") == "Translate this from English to Catalan:\nEnglish: Hi.\nCatalan:"


def test_loss_only_on_target_and_eos(tiny_tokenizer):
    prompt = format_prompt(TEMPLATE, "en-ca", "The file menu.")
    example = encode_example(tiny_tokenizer, prompt, "El menú fitxer.", max_length=200)
    n_prompt = len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    assert example.input_ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(example.input_ids[n_prompt:-1]) == " El menú fitxer."


def test_collate_right_pads_and_masks(tiny_tokenizer):
    a = encode_example(tiny_tokenizer, "A:", "one two three", 64)
    b = encode_example(tiny_tokenizer, "A:", "one", 64)
    batch = collate([a, b], pad_token_id=tiny_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][1].sum() == len(b.input_ids)
    assert (batch["labels"][1, len(b.input_ids):] == IGNORE_INDEX).all()


def test_both_protocols_score_their_view_of_one_continuation():
    from kslottery.evaluation.scoring import first_line, score_protocols, whole

    ran_on = "  Hola món.\nEnglish: more\n\nCatalan: més"
    assert first_line(ran_on) == "Hola món." and whole(ran_on) == "Hola món. English: more  Catalan: més"
    assert first_line(" Hola món. ") == whole(" Hola món. ") == "Hola món."  # no newline: one text
    assert first_line("") == whole("") == ""  # eos at once
    # a continuation that opens with a newline: its first line of text (the decoder of the first-line
    # protocol alone stopped at that newline and scored an empty hypothesis)
    assert first_line("\nCatalà:\nCatalà:") == "Català:" and whole("\nCatalà:\nCatalà:") == "Català: Català:"
    references = ["Hola món.", "Obre el fitxer."]
    scores = score_protocols([ran_on, " Obre el fitxer."], references)
    assert scores["chrf++"] == 100.0 and scores["whole_chrf++"] < 100.0  # the run-on line costs under `whole`
    stopped = score_protocols([" Hola món.", " Obre el fitxer."], references)
    assert stopped["chrf++"] == stopped["whole_chrf++"] == 100.0


def test_batched_translation_equals_one_at_a_time(tiny_model_dir, tmp_path):
    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, tmp_path / "base")
    model, tokenizer = load_saved(tmp_path / "base")
    prompts = [format_prompt(TEMPLATE, "en-ca", s) for s in
               ["The file.", "Choose options for page style and print.", "A dialog opens where you can choose."]]
    batched = translate(model, tokenizer, prompts, batch_size=3, max_new_tokens=8)
    single = [translate(model, tokenizer, [p], batch_size=1, max_new_tokens=8)[0] for p in prompts]
    assert batched == single and any(batched)


@pytest.mark.parametrize("method", ["prefix", "ticket"])
def test_adapted_models_translate_batched_as_one_at_a_time(tiny_model_dir, tmp_path, method):
    from kslottery.model.surgery import prepare
    from kslottery.model.saved import load_trained, save_trained

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, tmp_path / "base")
    model, tokenizer = load_saved(tmp_path / "base")
    section = small_section(method, lr=1)
    adapted = prepare(method, model, section, rows=[5, 9, 40])
    with torch.no_grad():  # an adapter that is not the identity, so that padding mistakes would show
        for name, parameter in adapted.named_parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    save_trained(adapted, method, tmp_path / method, {"trainable_params": 1})
    loaded, tokenizer = load_trained(tmp_path / "base", tmp_path / method, merge=True)
    prompts = [format_prompt(TEMPLATE, "en-ca", s) for s in ["The file.", "Choose options for page style and print."]]
    batched = translate(loaded, tokenizer, prompts, batch_size=2, max_new_tokens=6)
    single = [translate(loaded, tokenizer, [p], batch_size=1, max_new_tokens=6)[0] for p in prompts]
    assert batched == single and any(batched)
    # our decoding loop (prefix tuning keeps transformers' generate) gives generate's tokens
    ours = translate_tokens(loaded, tokenizer, prompts, batch_size=2, max_new_tokens=6)
    assert ours == translate_tokens(loaded, tokenizer, prompts, batch_size=2, max_new_tokens=6, use_generate=True)


def _generate_until_stop(model, batch, stop_ids, max_new_tokens, pad_token_id):
    """transformers' generate, each row cut after its first stop id (generate pads finished rows)."""
    from kslottery.evaluation.translate import _through_first

    generated = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                               eos_token_id=stop_ids.tolist(), pad_token_id=pad_token_id)
    return [_through_first(t, set(stop_ids.tolist())) for t in generated[:, batch["input_ids"].shape[1]:].tolist()]


@pytest.mark.parametrize("method", ["base", "lora", "ticket"])
def test_greedy_drops_finished_rows_and_equals_generate(tiny_model_dir, tmp_path, method):
    """Rows that stop early leave the batch (and the KV cache); the tokens are still those of
    transformers' generate, for the plain model and for unmerged adapters."""
    from kslottery.model.surgery import prepare
    from kslottery.evaluation.translate import greedy

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    torch.manual_seed(0)
    with torch.no_grad():  # a livelier model than the init's (which repeats one token forever)
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    if method != "base":
        section = small_section(method, lr=1)
        model = prepare(method, model, section, rows=[5, 9, 40])
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn_like(parameter))
    prompts = [format_prompt(TEMPLATE, "en-ca", s) for s in
               ["The file.", "Choose options for page style and print.", "A dialog opens.", "Print."]]
    batch = tokenizer.pad({"input_ids": [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]},
                          padding_side="left", return_tensors="pt")
    never = torch.tensor([len(tokenizer) + 5])  # an id no row can emit: every row runs to the end
    with torch.inference_mode():
        free = _generate_until_stop(model, batch, never, 12, tokenizer.pad_token_id)
        # a stop id that ends row 0 after its 3rd token at the latest (others may stop elsewhere)
        stop_ids = torch.tensor([free[0][2]])
        expected = _generate_until_stop(model, batch, stop_ids, 12, tokenizer.pad_token_id)
        ours = greedy(model, batch["input_ids"], batch["attention_mask"], stop_ids, 12)
        ours_free = greedy(model, batch["input_ids"], batch["attention_mask"], never, 12)
    assert ours_free == free and all(len(tokens) == 12 for tokens in free)
    assert ours == expected
    assert min(len(t) for t in ours) <= 3 and len({len(t) for t in ours}) > 1  # rows left at different steps


def test_decoding_runs_past_newlines_to_eos_and_keeps_the_first_lines_of_a_newline_stop(tiny_model_dir):
    """Decoding no longer stops at a newline, only at eos or max_new_tokens; the first line of each
    continuation is what decoding that stopped at the first newline gave (greedy: the tokens before
    the stop do not depend on it)."""
    from kslottery.evaluation.scoring import first_line
    from kslottery.evaluation.translate import greedy

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    torch.manual_seed(1)
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # a lively model whose lines end early and go on
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
        model.lm_head.weight[newline] += 2.0
    prompts = [format_prompt(TEMPLATE, "en-ca", s) for s in
               ["The file.", "Choose options for page style and print.", "A dialog opens.", "Print.", "Options."]]
    continuations = translate(model, tokenizer, prompts, batch_size=5, max_new_tokens=16)
    tokens = translate_tokens(model, tokenizer, prompts, batch_size=5, max_new_tokens=16)
    assert all(t[-1] == tokenizer.eos_token_id or len(t) == 16 for t in tokens)
    assert any("\n" in c.strip() for c in continuations)  # some continuation runs on past its first line
    newline_tokens = [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]
    line_stops = torch.tensor(sorted({*newline_tokens, tokenizer.eos_token_id}))
    with torch.inference_mode():
        for prompt, continuation in zip(prompts, continuations):
            ids = torch.tensor([tokenizer(prompt)["input_ids"]])
            old = greedy(model, ids, torch.ones_like(ids), line_stops, 16)[0]  # the newline-stopping decode
            old_line = tokenizer.decode(old, skip_special_tokens=True).strip().split("\n", 1)[0].strip()
            assert first_line(continuation) == old_line, (prompt, continuation)
