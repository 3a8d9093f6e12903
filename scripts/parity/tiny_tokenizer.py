"""The tiny tokenizer and processor files every tiny model carries (tokenizer.json, tokenizer_config.json,
chat_template.jinja, preprocessor_config.json, video_preprocessor_config.json).

A byte-level BPE trained with the `tokenizers` library on the fixed English text below (the words of a synthetic
visual task) to exactly 352 regular tokens, then GLM's special tokens at ids 352..380 (tiny_models.SPECIAL_TOKENS).
The pre-tokenizer is GLM-4's: a Split on the GLM-4 regex (which has an inline case-insensitive group, so the
TypeScript tokenizer is tested on it) followed by ByteLevel without its own regex.
The chat template follows the real GLM-4.1V one, with GLM-4.6V's additions: `enable_thinking` (the generation
prompt gets `<think></think>\\n` when thinking is off), `reasoning_content`, tools and tool responses.
Training is deterministic: the same text gives the same tokenizer.json byte for byte.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tiny_models import ID, SPECIAL_TOKENS, FIRST_SPECIAL

GLM4_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle"]
COUNTS = ["one", "two", "three"]
POSITIONS = ["left", "right", "top", "bottom", "center"]


def corpus() -> list[str]:
    """A fixed English text about coloured shapes (questions, answers, a little chat and reasoning)."""
    lines = [
        "You are a helpful assistant that looks at images and videos of coloured shapes.",
        "Describe this image. Describe this video. Answer with one word.",
        "The image shows a picture with shapes on a white background.",
        "Let me think about it step by step. I can see the shapes clearly.",
        "Thank you! That is correct. Is there anything else in the picture?",
        "The answer is: yes. The answer is: no. I don't know, it's hard to tell.",
    ]
    for c in COLOURS:
        for s in SHAPES:
            lines.append(f"What colour is the {s}? The {s} is {c}.")
            lines.append(f"There is a {c} {s} in the image.")
    for p in POSITIONS:
        for s in SHAPES:
            lines.append(f"Where is the {s}? The {s} is at the {p}.")
    for i, n in enumerate(COUNTS):
        lines.append(f"How many shapes are there? There are {n} shapes. Count: {i + 1}.")
        lines.append(f"How many {SHAPES[i]}s can you see? I can see {n}.")
    lines.append("At 0.5 seconds the circle moves to the right; at 1.0 seconds it is at the top.")
    return lines


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM4_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=FIRST_SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(corpus() * 4, trainer=trainer)
    if tok.get_vocab_size() != FIRST_SPECIAL:
        raise RuntimeError(f"BPE training gave {tok.get_vocab_size()} tokens, expected {FIRST_SPECIAL}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    for t, i in ID.items():
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t), i)
    return tok


CHAT_TEMPLATE = r"""[gMASK]<sop>
{%- if tools %}
<|system|>
# Tools

You may call one or more functions to assist with the user query.
<tools>
{% for tool in tools %}
{{ tool | tojson }}
{% endfor %}
</tools>
{%- endif %}
{%- for msg in messages %}
    {%- if msg.role == 'system' %}
<|system|>
{{ msg.content }}
    {%- elif msg.role == 'user' %}
<|user|>{{ '\n' }}
        {%- if msg.content is string %}
{{ msg.content }}
        {%- else %}
            {%- for item in msg.content %}
                {%- if item.type == 'video' or 'video' in item %}
<|begin_of_video|><|video|><|end_of_video|>
                {%- elif item.type == 'image' or 'image' in item %}
<|begin_of_image|><|image|><|end_of_image|>
                {%- elif item.type == 'text' %}
{{ item.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
    {%- elif msg.role == 'assistant' %}
<|assistant|>
        {%- if msg.reasoning_content %}
{{ '\n<think>' + msg.reasoning_content.strip() + '</think>' }}
        {%- endif %}
{{ '\n' + msg.content if msg.content else '\n' }}
        {%- for tc in msg.tool_calls or [] %}
{{ '\n' if msg.content or not loop.first else '' }}<tool_call>{{ tc.function.name }}
            {%- for k, v in tc.function.arguments.items() %}
{{ '\n<arg_key>' + k + '</arg_key>\n<arg_value>' }}{{ v if v is string else v | tojson }}</arg_value>
            {%- endfor %}
{{ '\n</tool_call>' }}
        {%- endfor %}
    {%- elif msg.role == 'tool' %}
<|observation|>
<tool_response>{{ msg.content }}</tool_response>
    {%- endif %}
{%- endfor %}
{% if add_generation_prompt %}<|assistant|>
{% if enable_thinking is defined and not enable_thinking %}<think></think>
{% endif %}{% endif %}"""


def tokenizer_config(processor_class: str) -> dict:
    return {
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": True}
            for t, i in ID.items()
        },
        "clean_up_tokenization_spaces": False,
        "do_lower_case": False,
        "eos_token": "<|endoftext|>",
        "extra_special_tokens": SPECIAL_TOKENS[1:],
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "processor_class": processor_class,
        "remove_space": False,
        "tokenizer_class": "TokenizersBackend",
    }


def image_config(prefix: str) -> dict:
    """Small sizes so a test image stays a few patches: 3136 = 56*56 px (16 patches) up to 25088 px."""
    return {
        "size": {"shortest_edge": 3136, "longest_edge": 12544 * 2},
        "do_rescale": True,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": f"{prefix}ImageProcessor",
        "processor_class": f"{prefix}Processor",
    }


def video_config(prefix: str) -> dict:
    """Frames share the pixel budget (T*h*w <= longest_edge): 4 frames of 56*56 px fit in 12544*4."""
    cfg = image_config(prefix)
    del cfg["image_processor_type"]
    cfg["size"] = {"shortest_edge": 3136, "longest_edge": 12544 * 4}
    cfg["video_processor_type"] = f"{prefix}VideoProcessor"
    return cfg


def save_tokenizer(out: Path, model_type: str) -> None:
    """Writes the tokenizer, chat template and processor configs into a model folder (glm4v or glm46v names)."""
    prefix = {"glm4v": "Glm4v", "glm46v": "Glm46V"}[model_type]
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(out / "tokenizer.json"))
    dump = lambda name, obj: (out / name).write_text(json.dumps(obj, indent=2) + "\n")  # noqa: E731
    dump("tokenizer_config.json", tokenizer_config(f"{prefix}Processor"))
    dump("preprocessor_config.json", image_config(prefix))
    dump("video_preprocessor_config.json", video_config(prefix))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
