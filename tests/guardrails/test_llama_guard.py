"""Llama Guard: Meta's prompt, the verdict parser, the p_unsafe threshold, and loading fake, tiny and real models."""

import threading
from types import SimpleNamespace

import pytest
import torch

from guardrails import llama_guard
from guardrails.base import GuardContext, GuardResult
from guardrails.errors import GuardConfigError
from guardrails.llama_guard import HAZARD_CATEGORIES, GuardModel, LlamaGuard, build_prompt, parse_verdict

OFFICIAL_CATEGORIES = (
    "S1: Violent Crimes.\nS2: Non-Violent Crimes.\nS3: Sex Crimes.\nS4: Child Exploitation.\nS5: Defamation.\n"
    "S6: Specialized Advice.\nS7: Privacy.\nS8: Intellectual Property.\nS9: Indiscriminate Weapons.\nS10: Hate.\n"
    "S11: Self-Harm.\nS12: Sexual Content.\nS13: Elections.\nS14: Code Interpreter Abuse."
)


def official_prompt(role, categories, conversation):
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy "
        "with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n"
        f"{categories}\n<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n{conversation}\n\n"
        f"<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST {role} message in the above "
        "conversation:\n - First line must read 'safe' or 'unsafe'.\n"
        " - If unsafe, a second line must include a comma-separated list of violated categories."
    )


def test_taxonomy_has_the_fourteen_official_hazards():
    assert list(HAZARD_CATEGORIES) == [f"S{n}" for n in range(1, 15)]
    assert HAZARD_CATEGORIES["S1"].name == "Violent Crimes"
    assert HAZARD_CATEGORIES["S4"].name == "Child Sexual Exploitation"
    assert HAZARD_CATEGORIES["S11"].name == "Suicide & Self-Harm"
    assert HAZARD_CATEGORIES["S14"].name == "Code Interpreter Abuse"
    assert all(category.description for category in HAZARD_CATEGORIES.values())


def test_user_prompt_is_metas_exact_text():
    prompt = build_prompt(["  How do I bake bread?\n"], role="User")
    assert prompt == official_prompt("User", OFFICIAL_CATEGORIES, "User: How do I bake bread?")


def test_agent_prompt_lists_both_turns_and_asks_about_the_agent():
    prompt = build_prompt(["How do I bake bread?", "Knead, proof, bake."], role="Agent")
    expected_turns = "User: How do I bake bread?\n\nAgent: Knead, proof, bake."
    assert prompt == official_prompt("Agent", OFFICIAL_CATEGORIES, expected_turns)


def test_role_defaults_to_the_last_turn_and_must_exist():
    assert "ONLY THE LAST Agent message" in build_prompt(["q", "a"])
    assert "ONLY THE LAST User message" in build_prompt(["q", "a", "q2"])
    assert "ONLY THE LAST User message" in build_prompt(["q", "a"], role="User")
    with pytest.raises(ValueError, match="Agent turn"):
        build_prompt(["q"], role="Agent")
    with pytest.raises(ValueError, match="'User' or 'Agent'"):
        build_prompt(["q"], role="Assistant")
    with pytest.raises(ValueError, match="non-empty"):
        build_prompt([])


def test_a_category_subset_keeps_official_codes_in_taxonomy_order():
    prompt = build_prompt(["q"], categories=["s9", "S1 "])
    assert "<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violent Crimes.\nS9: Indiscriminate Weapons.\n<END" in prompt
    assert "S2:" not in prompt


def test_descriptions_go_under_their_category_line():
    prompt = build_prompt(["q"], categories=["S12"], descriptions=True)
    assert f"S12: Sexual Content.\n{HAZARD_CATEGORIES['S12'].description}\n<END" in prompt


@pytest.mark.parametrize("categories", [["S15"], ["violence"], []])
def test_unknown_or_no_categories_are_a_config_error(categories):
    with pytest.raises(GuardConfigError, match="S1"):
        build_prompt(["q"], categories=categories)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("safe", (True, [])),
        ("unsafe\nS1,S9", (False, ["S1", "S9"])),
        (" UNSAFE \n s10 ", (False, ["S10"])),
        ("unsafe\nS9, S1, S9", (False, ["S1", "S9"])),
        ("Safe.\n", (True, [])),
        ("unsafe", (False, [])),
    ],
)
def test_parser_reads_verdicts_leniently(output, expected):
    assert parse_verdict(output) == expected


def test_parser_drops_unknown_and_disabled_categories():
    assert parse_verdict("unsafe\nS1,S99,banana") == (False, ["S1"])
    assert parse_verdict("unsafe\nS1,S9", categories=["S9"]) == (False, ["S9"])


@pytest.mark.parametrize("garbage", ["", "Yes, there is unsafe content.", "safety first", "I cannot help with that"])
def test_unparseable_output_follows_the_setting(garbage):
    assert parse_verdict(garbage) == (False, [])
    assert parse_verdict(garbage, on_unparseable="safe") == (True, [])


def test_parser_rejects_a_bad_setting():
    with pytest.raises(GuardConfigError, match="on_unparseable"):
        parse_verdict("safe", on_unparseable="block")


class ScriptedTokenizer:
    """Just enough of a Hugging Face tokenizer: 'safe' and 'unsafe' are single tokens, the reply is scripted."""

    pad_token_id = None
    eos_token_id = 0

    def __init__(self, reply, chat_template="plain chat", vocab=()):
        self.reply = reply
        self.chat_template = chat_template
        self.vocab = {token: index for index, token in enumerate(vocab, start=10)}
        self.texts = []

    def encode(self, text, add_special_tokens=True):
        return {"safe": [1], "unsafe": [2]}.get(text, [3])

    def get_vocab(self):
        return self.vocab

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        return f"<user>{messages[0]['content']}</user><assistant>"

    def __call__(self, text, return_tensors, add_special_tokens):
        self.texts.append((text, add_special_tokens))
        ids = torch.tensor([[5, 6, 7]])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def decode(self, ids, skip_special_tokens):
        return self.reply


class ScriptedModel:
    """Returns fixed first-step logits for the 'unsafe' (id 2) and 'safe' (id 1) tokens."""

    device = torch.device("cpu")

    def __init__(self, logit_unsafe, logit_safe):
        self.logit_unsafe, self.logit_safe = logit_unsafe, logit_safe
        self.calls = []

    def generate(self, **kwargs):
        self.calls.append(kwargs)
        logits = torch.zeros(1, 8)
        logits[0, 2], logits[0, 1] = self.logit_unsafe, self.logit_safe
        sequences = torch.cat([kwargs["input_ids"], torch.tensor([[2, 4]])], dim=1)
        return SimpleNamespace(sequences=sequences, logits=(logits, torch.zeros(1, 8)))


def scripted_guard(monkeypatch, reply, logit_unsafe, logit_safe, tokenizer=None, **options):
    tokenizer = tokenizer or ScriptedTokenizer(reply)
    model = ScriptedModel(logit_unsafe, logit_safe)
    monkeypatch.setattr(llama_guard, "load_guard_model", lambda name, load_gguf=None: GuardModel(model, tokenizer, threading.Lock()))
    return LlamaGuard("scripted/guard", **options), model, tokenizer


def test_p_unsafe_is_the_two_way_softmax_of_the_first_token(monkeypatch):
    guard, model, _ = scripted_guard(monkeypatch, "unsafe\nS1,S9", logit_unsafe=2.0, logit_safe=0.0)
    verdict = guard.classify(["How do I hurt someone?"])
    assert verdict.p_unsafe == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
    assert not verdict.safe and verdict.categories == ("S1", "S9") and verdict.parsed
    assert model.calls[0]["do_sample"] is False and model.calls[0]["max_new_tokens"] == 10


def test_threshold_decides_and_the_guard_result_names_the_categories(monkeypatch):
    strict, _, _ = scripted_guard(monkeypatch, "unsafe\nS1,S9", 2.0, 0.0, threshold=0.5)
    result = strict.check("How do I build a bomb?")
    assert isinstance(result, GuardResult) and not result.allowed
    assert result.guard == "llama_guard" and result.category == "unsafe:S1,S9"
    assert "S9 Indiscriminate Weapons" in result.reason
    assert result.scores["p_unsafe"] == pytest.approx(0.8808, abs=1e-4)

    lenient, _, _ = scripted_guard(monkeypatch, "unsafe\nS1,S9", 2.0, 0.0, threshold=0.9)
    allowed = lenient.check("How do I build a bomb?")
    assert allowed.allowed and allowed.category is None
    assert allowed.scores["p_unsafe"] == pytest.approx(0.8808, abs=1e-4)


def test_a_low_threshold_blocks_even_a_safe_reply(monkeypatch):
    guard, _, _ = scripted_guard(monkeypatch, "safe", 0.0, 1.0, threshold=0.2, name="lg")
    result = guard.check("Hello")
    assert not result.allowed and result.category == "unsafe" and result.guard == "lg"


def test_unparseable_output_blocks_by_default_and_can_be_allowed(monkeypatch):
    guard, _, _ = scripted_guard(monkeypatch, "I am a helpful assistant", 0.0, 3.0)
    result = guard.check("Hello")
    assert not result.allowed and result.category == "unsafe" and "neither" in result.reason
    assert 0.0 <= result.scores["p_unsafe"] <= 1.0

    permissive, _, _ = scripted_guard(monkeypatch, "I am a helpful assistant", 3.0, 0.0, on_unparseable="safe")
    assert permissive.check("Hello").allowed


def test_check_sends_a_user_turn_without_a_question_and_an_agent_turn_with_one(monkeypatch):
    guard, _, tokenizer = scripted_guard(monkeypatch, "safe", 0.0, 2.0, categories=["S6"])
    assert guard.check("What is the dose?").allowed
    assert guard.check("Take 2 tablets.", GuardContext(question="What is the dose?", contexts=("leaflet",))).allowed
    assert guard.check("Still a user turn.", GuardContext(question=None)).allowed
    user, agent, no_question = (text for text, _ in tokenizer.texts)
    assert user.startswith("<user>Task:") and user.endswith("</user><assistant>")
    assert "User: What is the dose?\n\n<END CONVERSATION>" in user and "LAST User message" in user
    assert "User: What is the dose?\n\nAgent: Take 2 tablets.\n\n<END" in agent and "LAST Agent message" in agent
    assert "User: Still a user turn." in no_question
    assert "S6: Specialized Advice.\n<END" in user


def test_a_llama_guard_chat_template_is_replaced_by_a_plain_llama3_turn(monkeypatch):
    tokenizer = ScriptedTokenizer(
        "safe", chat_template="... <BEGIN UNSAFE CONTENT CATEGORIES> ...", vocab=["<|start_header_id|>"]
    )
    guard, _, _ = scripted_guard(monkeypatch, "safe", 0.0, 2.0, tokenizer=tokenizer)
    guard.check("Hi")
    text, special = tokenizer.texts[0]
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTask: Check")
    assert text.endswith("categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert special is False


def test_without_a_chat_template_the_bare_prompt_gets_special_tokens(monkeypatch):
    tokenizer = ScriptedTokenizer("safe", chat_template=None)
    guard, _, _ = scripted_guard(monkeypatch, "safe", 0.0, 2.0, tokenizer=tokenizer)
    guard.check("Hi")
    text, special = tokenizer.texts[0]
    assert text.startswith("Task: Check") and special is True


@pytest.mark.parametrize(
    "options", [{"threshold": 1.5}, {"max_new_tokens": 0}, {"on_unparseable": "maybe"}, {"categories": ["S0"]}]
)
def test_bad_settings_fail_at_construction(monkeypatch, options):
    with pytest.raises(GuardConfigError):
        scripted_guard(monkeypatch, "safe", 0.0, 1.0, **options)


@pytest.mark.parametrize("missing", ["/no/such/llama-guard-3-1b.Q4_K_M.gguf", "/no/such/folder", "./no-such-dir/guard"])
def test_a_missing_path_is_a_config_error(missing):
    with pytest.raises(GuardConfigError, match="does not exist"):
        LlamaGuard(missing)


def test_a_hub_name_that_is_not_cached_says_to_pass_a_local_folder():
    with pytest.raises(GuardConfigError, match="offline.*local-dir"):
        LlamaGuard("tessera-tests/no-such-llama-guard")


def test_a_folder_without_a_model_is_a_config_error(tmp_path):
    with pytest.raises(GuardConfigError, match="holds no causal LM"):
        LlamaGuard(str(tmp_path))


def save_tiny_causal_lm(folder):
    """A one-layer random Llama and a word-level tokenizer in which 'safe' and 'unsafe' are single tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "safe", "unsafe", "S1", "S9", "Task:", "User:", "Agent:"]
    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return words


def test_a_local_folder_loads_and_p_unsafe_comes_from_the_first_step_logits(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    words = save_tiny_causal_lm(tmp_path)
    guard = LlamaGuard(str(tmp_path), max_new_tokens=2)
    result = guard.check("hello")
    assert isinstance(result, GuardResult) and result.allowed in (True, False)

    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    with torch.inference_mode():
        last = model(**tokenizer(build_prompt(["hello"]), return_tensors="pt")).logits[0, -1]
    expected = torch.softmax(torch.stack([last[words.index("unsafe")], last[words.index("safe")]]), dim=0)[0]
    assert result.scores["p_unsafe"] == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.slow
def test_smollm2_stands_in_for_llama_guard_end_to_end():
    from pipeline.lm.embedded import load_local_model, smollm2_gguf_path

    guard = LlamaGuard(str(smollm2_gguf_path()), categories=["S1", "S9"], max_new_tokens=3, load_gguf=load_local_model)
    user = guard.check("How do I reset my password?")
    agent = guard.check("Open Settings, then Security.", GuardContext(question="How do I reset my password?"))
    for result in (user, agent):
        assert isinstance(result, GuardResult) and result.guard == "llama_guard"
        assert 0.0 <= result.scores["p_unsafe"] <= 1.0
        assert result.allowed or (result.category or "").startswith("unsafe") and result.reason
